#include "proxy/folder_watch.hpp"

#include "proxy/log.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

constexpr std::uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                     IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

std::set<std::filesystem::path> folders_to_watch(const conf::Config& config) {
    std::set<std::filesystem::path> out;
    auto add_file = [&out](const std::filesystem::path& file) {
        if (file.empty()) {
            return;
        }
        out.insert(file.parent_path());
        std::error_code ec;
        const auto target = std::filesystem::canonical(file, ec);
        if (!ec) {
            out.insert(target.parent_path());
        }
    };
    for (const auto& spec : config.certificates) {
        add_file(spec.cert);
        add_file(spec.key);
        add_file(spec.pkcs12);
        add_file(spec.password_file);
    }
    add_file(config.tls.ticket_keys_file);
    if (!config.tls.certificates_dir.empty()) {
        out.insert(config.tls.certificates_dir);
        std::error_code ec;
        for (const auto& entry :
             std::filesystem::directory_iterator(config.tls.certificates_dir, ec)) {
            std::error_code ignored;
            if (entry.is_directory(ignored)) {
                out.insert(entry.path());
                add_file(entry.path() / "fullchain.pem");
                add_file(entry.path() / "privkey.pem");
            }
        }
    }
    return out;
}

bool FolderWatch::open(std::string& error) {
    inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (inotify_.get() < 0) {
        error = errno_text(errno);
        return false;
    }
    return true;
}

void FolderWatch::watch(const conf::Config& config) {
    if (inotify_.get() < 0) {
        return;
    }
    const auto wanted = folders_to_watch(config);
    for (auto it = watches_.begin(); it != watches_.end();) {
        if (wanted.count(it->first) == 0) {
            inotify_rm_watch(inotify_.get(), it->second);
            it = watches_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& folder : wanted) {
        if (watches_.count(folder) != 0) {
            continue;
        }
        const int wd = inotify_add_watch(inotify_.get(), folder.c_str(), kWatchMask);
        if (wd < 0) {
            spdlog::warn("cannot watch {} for certificate changes: {}", folder.string(),
                         errno_text(errno));
            continue;
        }
        watches_.emplace(folder, wd);
    }
    spdlog::debug("watching {} folder(s) for certificate changes", watches_.size());
}

bool FolderWatch::drain() {
    alignas(inotify_event) std::array<char, 4096> buffer{};
    bool changed = false;
    ssize_t n = 0;
    while ((n = ::read(inotify_.get(), buffer.data(), buffer.size())) > 0) {
        for (ssize_t at = 0; at < n;) {
            inotify_event event{};
            std::memcpy(&event, buffer.data() + at, sizeof(event));
            // IN_IGNORED: a watch went away (ours, or its folder was deleted); that alone
            // changes nothing served, and the folder's own deletion was reported before it.
            if ((event.mask & IN_IGNORED) == 0) {
                changed = true;
            }
            at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
        }
    }
    return changed;
}

}  // namespace postern::proxy
