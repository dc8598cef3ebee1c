#include "proxy/privileged_helper.hpp"

#include "conf/load.hpp"
#include "proxy/folder_watch.hpp"
#include "proxy/helper_channel.hpp"
#include "proxy/log.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <exception>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

// The helper's descriptors after it tidied up: 0 and 1 on /dev/null, 2 the log, these two, and
// its inotify descriptor.
constexpr int kRequestsFd = 3;
constexpr int kEventsFd = 4;

void watch_what_it_names(FolderWatch& watch, const conf::FileSnapshot& files) {
    const conf::LoadResult loaded = conf::load_config(files);
    if (loaded.config) {
        watch.watch(*loaded.config);
    }
}

// A full events socket means the main process has a "changed" it has not read yet: enough.
void tell_changed() {
    const std::string frame = encode_frame(HelperMessage::Changed);
    const ssize_t n = ::send(kEventsFd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0 && static_cast<std::size_t>(n) < frame.size()) {
        // Never seen for 5 bytes on a stream socketpair; finish it so the stream stays framed.
        (void)::send(kEventsFd, frame.data() + n, frame.size() - static_cast<std::size_t>(n),
                     MSG_NOSIGNAL);
    }
}

[[noreturn]] void serve(const std::filesystem::path& config_file) {
    FolderWatch watch;
    if (std::string error; !watch.open(error)) {
        spdlog::warn("cannot watch certificate files ({}); reload with SIGHUP", error);
    }
    watch_what_it_names(watch, *conf::take_file_snapshot(config_file));
    for (;;) {
        std::array<pollfd, 3> fds{{{kRequestsFd, POLLIN, 0},
                                   {kEventsFd, POLLIN, 0},  // only EOF ever comes this way
                                   {watch.fd(), POLLIN, 0}}};
        if (::poll(fds.data(), watch.fd() < 0 ? 2 : 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            spdlog::error("poll: {}", errno_text(errno));
            ::_exit(1);
        }
        if (fds[0].revents != 0) {
            const std::optional<Frame> request = read_frame(kRequestsFd);
            if (!request) {
                ::_exit(0);  // the main process is gone
            }
            if (request->type != HelperMessage::Snapshot) {
                spdlog::error("unexpected request (type {}); stopping",
                              static_cast<int>(request->type));
                ::_exit(1);
            }
            const auto files = conf::take_file_snapshot(config_file);
            std::string wire = files->encode();
            const bool sent = write_frame(kRequestsFd, HelperMessage::Files, wire);
            conf::FileSnapshot::wipe(wire);
            if (!sent) {
                ::_exit(0);
            }
            watch_what_it_names(watch, *files);
        }
        if ((fds[1].revents & (POLLHUP | POLLERR | POLLIN)) != 0) {
            ::_exit(0);
        }
        if (fds[2].revents != 0 && watch.drain()) {
            tell_changed();
        }
    }
}

// In the child, straight after fork: the parent had no thread, so its memory is consistent.
[[noreturn]] void helper_main(int requests, int events, const std::filesystem::path& config_file,
                              pid_t parent) {
    try {
        if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) {
            ::_exit(0);
        }
        (void)::prctl(PR_SET_NAME, "postern-helper");
        // Stopping is the main process's business: a terminal's ^C or a SIGHUP sent to every
        // postern must not take the helper away from under it.
        (void)std::signal(SIGINT, SIG_IGN);
        (void)std::signal(SIGHUP, SIG_IGN);
        (void)std::signal(SIGPIPE, SIG_IGN);
        const int high_requests = ::fcntl(requests, F_DUPFD_CLOEXEC, 64);
        const int high_events = ::fcntl(events, F_DUPFD_CLOEXEC, 64);
        const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (high_requests < 0 || high_events < 0 || null < 0 || ::dup2(null, 0) < 0 ||
            ::dup2(null, 1) < 0 || ::dup3(high_requests, kRequestsFd, O_CLOEXEC) < 0 ||
            ::dup3(high_events, kEventsFd, O_CLOEXEC) < 0 ||
            ::syscall(SYS_close_range, 5U, ~0U, 0U) != 0) {
            spdlog::error("cannot set up its descriptors: {}", errno_text(errno));
            ::_exit(1);
        }
        serve(config_file);
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
    } catch (...) {
        spdlog::error("unknown exception");
    }
    ::_exit(1);
}

}  // namespace

std::unique_ptr<PrivilegedHelper> PrivilegedHelper::start(const std::filesystem::path& config_file,
                                                          std::string& error) {
    std::array<int, 2> requests{-1, -1};
    std::array<int, 2> events{-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, requests.data()) != 0) {
        error = "socketpair: " + errno_text(errno);
        return nullptr;
    }
    UniqueFd main_requests{requests[0]};
    UniqueFd helper_requests{requests[1]};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, events.data()) != 0) {
        error = "socketpair: " + errno_text(errno);
        return nullptr;
    }
    UniqueFd main_events{events[0]};
    UniqueFd helper_events{events[1]};
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        error = "fork: " + errno_text(errno);
        return nullptr;
    }
    if (pid == 0) {
        // Its own log lines say whose they are; the rest of the pattern is the main process's.
        spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l privileged helper: %v");
        helper_main(helper_requests.get(), helper_events.get(), config_file, parent);
    }
    if (::fcntl(main_events.get(), F_SETFL, O_NONBLOCK) != 0) {
        error = "fcntl: " + errno_text(errno);
        return nullptr;  // the helper exits when its sockets close
    }
    return std::make_unique<PrivilegedHelper>(pid, std::move(main_requests),
                                              std::move(main_events));
}

PrivilegedHelper::~PrivilegedHelper() {
    requests_.reset();
    events_.reset();
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
}

std::shared_ptr<const conf::FileSnapshot> PrivilegedHelper::snapshot(std::string& error) {
    const std::lock_guard lock(request_mutex_);
    if (!write_frame(requests_.get(), HelperMessage::Snapshot)) {
        error = "the privileged helper (pid " + std::to_string(pid_) + ") is gone";
        return nullptr;
    }
    std::optional<Frame> reply = read_frame(requests_.get());
    if (!reply) {
        error = "the privileged helper (pid " + std::to_string(pid_) + ") did not answer";
        return nullptr;
    }
    auto files =
        reply->type == HelperMessage::Files ? conf::FileSnapshot::decode(reply->payload) : nullptr;
    conf::FileSnapshot::wipe(reply->payload);
    if (!files) {
        error = "the privileged helper (pid " + std::to_string(pid_) + ") answered nonsense";
    }
    return files;
}

PrivilegedHelper::Events PrivilegedHelper::read_events() {
    Events seen = Events::None;
    std::array<char, 512> buffer{};
    for (;;) {
        const ssize_t n = ::read(events_.get(), buffer.data(), buffer.size());
        if (n > 0) {
            // Only "changed" travels this way, and how many does not matter.
            seen = Events::Changed;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return seen;
        }
        return Events::Gone;
    }
}

}  // namespace postern::proxy
