#include "proxy/reloader.hpp"

#include "conf/load.hpp"
#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"
#include "tls/cert_checks.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <sys/inotify.h>

namespace postern::proxy {
namespace {

// certbot writes several files and swaps several links per renewal: wait for quiet.
constexpr timeval kDebounce{1, 0};
constexpr timeval kDaily{time_t{24} * 3600, 0};
constexpr std::uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                     IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

// Folders whose changes can change what is served: the folder of each configured path (a
// symlink swapped there is seen) and the folder its link finally points into (a file rewritten
// in place there is seen), plus the certificate folder and each of its subfolders.
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

}  // namespace

Reloader::Reloader(event_base* base, conf::Config config, std::shared_ptr<tls::CertSource> source)
    : base_(base),
      config_(std::move(config)),
      source_(std::move(source)),
      debounce_(event_new(base, -1, 0, &event_cb<Reloader, &Reloader::on_debounced>, this)),
      built_(event_new(base, -1, 0, &event_cb<Reloader, &Reloader::on_built>, this)),
      daily_(event_new(base, -1, 0, &event_cb<Reloader, &Reloader::on_daily>, this)) {}

Reloader::~Reloader() {
    if (builder_.joinable()) {
        builder_.join();  // a build in flight finishes; its result is dropped with us
    }
}

bool Reloader::start() {
    evtimer_add(daily_.get(), &kDaily);
    inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (inotify_.get() < 0) {
        spdlog::warn("cannot watch certificate files ({}); reload with SIGHUP", errno_text(errno));
        return false;
    }
    inotify_event_.reset(event_new(base_, inotify_.get(), EV_READ | EV_PERSIST,
                                   &event_cb<Reloader, &Reloader::on_inotify>, this));
    event_add(inotify_event_.get(), nullptr);
    rewatch();
    return true;
}

void Reloader::rewatch() {
    if (inotify_.get() < 0) {
        return;
    }
    // Only the difference is applied: removing a watch queues an IN_IGNORED event, and
    // re-adding every watch after every reload would read as yet another change.
    const auto wanted = folders_to_watch(config_);
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

void Reloader::on_inotify() {
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
    if (changed) {
        evtimer_add(debounce_.get(), &kDebounce);  // re-arming pushes the deadline back
    }
}

void Reloader::on_debounced() {
    request("a certificate file changed");
}

void Reloader::request(const char* why) {
    if (building_) {
        pending_why_ = why;
        return;
    }
    build_async(why);
}

void Reloader::build_async(std::string why) {
    building_ = true;
    if (manager_ != nullptr) {
        manager_->reloading(why);
    }
    if (builder_.joinable()) {
        builder_.join();
    }
    builder_ = std::jthread([this, file = config_.file, why = std::move(why)] {
        Result result;
        result.why = why;
        try {
            auto loaded = conf::load_config(file);
            if (!loaded.config) {
                result.errors = std::move(loaded.errors);
            } else {
                auto built = tls::CertStore::build(*loaded.config);
                result.store = std::move(built.store);
                result.errors = std::move(built.errors);
                result.config = std::move(loaded.config);
            }
        } catch (const std::exception& e) {
            conf::ConfigError error;
            error.file = file.string();
            error.message = e.what();
            result.errors.push_back(std::move(error));
        }
        {
            const std::lock_guard lock(result_mutex_);
            result_ = std::move(result);
        }
        event_active(built_.get(), 0, 0);  // wakes the main loop (libevent thread support)
    });
}

void Reloader::on_built() {
    std::optional<Result> result;
    {
        const std::lock_guard lock(result_mutex_);
        result.swap(result_);
    }
    building_ = false;
    if (!result) {
        return;
    }
    std::string failure;  // the first error, for the service manager's STATUS=
    if (result->store && result->config) {
        // Any listener or backend key (routes, trusted_proxies, exec_user, ...), not just how
        // many there are: an admin who dropped a balancer from trusted_proxies must be told it
        // is still trusted until a restart.
        const bool listeners_changed = result->config->listeners != config_.listeners ||
                                       result->config->backends != config_.backends;
        // Only what the store is built from is taken over; listeners, backends and TLS policy
        // stay as bound at startup.
        config_.certificates = result->config->certificates;
        config_.tls.certificates_dir = result->config->tls.certificates_dir;
        config_.tls.expiry_warning_days = result->config->tls.expiry_warning_days;
        const std::size_t count = result->store->certificates().size();
        source_->publish(result->store);
        spdlog::info(
            "certificates reloaded ({}): {} certificate(s) now served to new "
            "connections",
            result->why, count);
        for (const auto& finding : tls::inspect(*result->store, config_)) {
            spdlog::warn("{}: {}", finding.file, finding.message);
        }
        if (listeners_changed) {
            spdlog::warn("{}: listener or backend changes take effect after a restart",
                         config_.file.string());
        }
    } else {
        ++failures_;
        failure = result->errors.empty() ? std::string{"no certificate store"}
                                         : conf::format_error(result->errors.front());
        for (const auto& e : result->errors) {
            spdlog::error("certificate reload failed: {}", conf::format_error(e));
        }
        spdlog::error(
            "certificate reload ({}) failed ({} failure(s) so far); still serving the "
            "previous {} certificate(s)",
            result->why, failures_, source_->current()->certificates().size());
    }
    if (manager_ != nullptr) {
        manager_->reloaded(std::move(failure));
    }
    rewatch();
    if (!pending_why_.empty()) {
        build_async(std::exchange(pending_why_, {}));
    }
}

void Reloader::on_signal() {
    request("SIGHUP");
}

void Reloader::fail_internal(const char* what) {
    spdlog::error("certificate reload: {}", what);
}

void Reloader::on_daily() {
    evtimer_add(daily_.get(), &kDaily);
    log_expiry();
}

void Reloader::log_expiry() const {
    for (const auto& finding : tls::inspect(*source_->current(), config_)) {
        spdlog::warn("{}: {}", finding.file, finding.message);
    }
}

}  // namespace postern::proxy
