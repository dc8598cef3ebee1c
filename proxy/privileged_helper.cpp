#include "proxy/privileged_helper.hpp"

#include "proxy/helper_serve.hpp"
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

std::unique_ptr<PrivilegedHelper> PrivilegedHelper::start(const HelperLaunch& launch,
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
        set_log_origin("privileged helper");
        run_helper(helper_requests.get(), helper_events.get(), launch, parent);
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

std::optional<Frame> PrivilegedHelper::ask(HelperMessage type, std::string_view payload,
                                           std::span<const int> fds, std::string& error) {
    const std::lock_guard lock(request_mutex_);
    if (!write_frame(requests_.get(), type, payload, fds)) {
        error = "the privileged helper (pid " + std::to_string(pid_) + ") is gone";
        return std::nullopt;
    }
    std::optional<Frame> reply = read_frame(requests_.get());
    if (!reply) {
        error = "the privileged helper (pid " + std::to_string(pid_) + ") did not answer";
    }
    return reply;
}

std::shared_ptr<const conf::FileSnapshot> PrivilegedHelper::snapshot(std::string& error) {
    std::optional<Frame> reply = ask(HelperMessage::Snapshot, {}, {}, error);
    if (!reply) {
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

bool PrivilegedHelper::spawn(const SpawnOrder& order, int stdio, int stderr_fd, Spawned& out,
                             std::string& error) {
    const std::array<int, 2> fds{stdio, stderr_fd};
    std::optional<Frame> reply = ask(HelperMessage::Spawn, encode_spawn(order), fds, error);
    if (!reply) {
        return false;
    }
    const std::optional<pid_t> pid =
        reply->type == HelperMessage::Spawned ? decode_pid(reply->payload) : std::nullopt;
    if (!pid || reply->fds.size() != 1) {
        error = reply->type == HelperMessage::Failed
                    ? reply->payload
                    : "the privileged helper (pid " + std::to_string(pid_) + ") answered nonsense";
        return false;
    }
    out.pid = *pid;
    out.pidfd = std::move(reply->fds.front());
    out.parent = this;
    return true;
}

void PrivilegedHelper::signal(pid_t pid, int number) {
    const std::lock_guard lock(request_mutex_);
    (void)write_frame(requests_.get(), HelperMessage::Signal,
                      encode_signal({.pid = pid, .signal = number}));
}

pid_t PrivilegedHelper::replace(std::span<const int> sockets, const std::string& names, int ready,
                                std::string& error) {
    std::vector<int> fds(sockets.begin(), sockets.end());
    fds.push_back(ready);
    std::optional<Frame> reply = ask(HelperMessage::Replace, names, fds, error);
    if (!reply) {
        return -1;
    }
    const std::optional<pid_t> pid =
        reply->type == HelperMessage::Started ? decode_pid(reply->payload) : std::nullopt;
    if (!pid) {
        error = reply->type == HelperMessage::Failed
                    ? reply->payload
                    : "the privileged helper (pid " + std::to_string(pid_) + ") answered nonsense";
        return -1;
    }
    return *pid;
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
