#include "proxy/replacement.hpp"

#include "proxy/log.hpp"
#include "proxy/spawn.hpp"
#include "proxy/trampoline.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT: POSIX's own global, read to pass the environment on

namespace postern::proxy {
namespace {

constexpr const char* kReadyVariable = "POSTERN_READY_FD";
constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START

// Writes `value` in decimal after `prefix` into `out` without allocating (after fork()).
void format_number(char* out, std::size_t size, const char* prefix, long value) {
    const std::size_t n = std::strlen(prefix);
    std::memcpy(out, prefix, n);
    const auto [end, ec] = std::to_chars(out + n, out + size - 1, value);
    *(ec == std::errc{} ? end : out + n) = '\0';
}

// The child between fork() and execve(): only async-signal-safe calls. Moves `fds` to 3.. and
// the ready pipe right after them, closes everything else, and runs the executable.
[[noreturn]] void exec_child(const char* executable, char* const* argv, char* const* envp,
                             char* pid_variable, std::size_t pid_size, const int* fds,
                             std::size_t count, int ready) {
    format_number(pid_variable, pid_size, "LISTEN_PID=", static_cast<long>(::getpid()));
    const int first_free = kFirstFd + static_cast<int>(count) + 1;
    std::array<int, 1024> moved{};
    for (std::size_t i = 0; i <= count && i < moved.size(); ++i) {
        moved[i] = ::fcntl(i < count ? fds[i] : ready, F_DUPFD, first_free);
        if (moved[i] < 0) {
            ::_exit(126);
        }
    }
    for (std::size_t i = 0; i <= count; ++i) {
        if (::dup2(moved[i], kFirstFd + static_cast<int>(i)) < 0) {
            ::_exit(126);
        }
    }
    (void)::syscall(SYS_close_range, static_cast<unsigned>(first_free), ~0U, 0U);
    // An ignored signal stays ignored across execve() (the main process ignores SIGPIPE, the
    // privileged helper SIGTERM and more): the new postern starts from the defaults.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; ++sig) {
        (void)::sigaction(sig, &dfl, nullptr);
    }
    sigset_t all;
    ::sigemptyset(&all);
    (void)::sigprocmask(SIG_SETMASK, &all, nullptr);  // NOLINT(concurrency-mt-unsafe): one thread

    ::execve(executable, argv, envp);
    ::_exit(127);
}

}  // namespace

std::string own_executable() {
    std::array<char, PATH_MAX> path{};
    const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
    return n > 0 ? std::string(path.data(), static_cast<std::size_t>(n)) : std::string{};
}

pid_t start_replacement(const std::string& executable, const std::vector<std::string>& arguments,
                        std::span<const int> sockets, const std::string& names, int ready,
                        std::string& error) {
    // Everything the child needs is made before fork(): after it only async-signal-safe calls.
    std::vector<std::string> args{executable};
    args.insert(args.end(), arguments.begin(), arguments.end());
    const std::vector<char*> argv = c_strings(args);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry{*e};
        if (!entry.starts_with("LISTEN_") && !entry.starts_with(kReadyVariable)) {
            env.emplace_back(entry);
        }
    }
    env.push_back("LISTEN_FDS=" + std::to_string(sockets.size()));
    env.push_back("LISTEN_FDNAMES=" + names);
    env.push_back(std::string(kReadyVariable) + "=" + std::to_string(kFirstFd + sockets.size()));
    env.emplace_back(48, '\0');  // LISTEN_PID=, written by the child
    const std::vector<char*> envp = c_strings(env);
    char* pid_variable = env.back().data();

    const pid_t pid = ::fork();
    if (pid < 0) {
        error = "fork: " + errno_text(errno);
        return -1;
    }
    if (pid == 0) {
        exec_child(executable.c_str(), argv.data(), envp.data(), pid_variable, 48, sockets.data(),
                   sockets.size(), ready);
    }
    return pid;
}

Replacement::Replacement(event_base* base, const ListenSockets& sockets, const Drain& drain,
                         std::vector<std::string> arguments, PrivilegedHelper* helper,
                         std::function<void(pid_t)> on_ready)
    : base_(base),
      sockets_(sockets),
      drain_(drain),
      executable_(own_executable()),
      arguments_(std::move(arguments)),
      helper_(helper),
      on_ready_(std::move(on_ready)) {}

void Replacement::on_signal() {
    if (drain_.started()) {  // the listeners are closed already: nothing to hand over
        spdlog::warn("SIGUSR2: ignored: this process is stopping");
        return;
    }
    if (child_ > 0) {
        spdlog::warn("SIGUSR2: a replacement process (pid {}) is already starting", child_);
        return;
    }
    if (executable_.empty()) {
        spdlog::error("SIGUSR2: cannot replace postern: its executable is unknown");
        return;
    }
    const auto& shared = sockets_.shared();
    if (shared.size() >= kMaxFrameFds) {
        spdlog::error("SIGUSR2: cannot replace postern: too many listening sockets");
        return;
    }
    std::array<int, 2> pipe_fds{-1, -1};
    if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) {
        spdlog::error("SIGUSR2: cannot replace postern: pipe: {}", errno_text(errno));
        return;
    }
    UniqueFd read_end{pipe_fds[0]};
    const UniqueFd write_end{pipe_fds[1]};
    std::string names;
    std::vector<int> fds;
    for (const auto& socket : shared) {
        fds.push_back(socket.fd);
        names += (names.empty() ? "" : ":") + socket.name;
    }
    // As server.user, only the helper (root) can start a process that binds and reads as root.
    std::string error;
    const pid_t pid = helper_ != nullptr ? helper_->replace(fds, names, write_end.get(), error)
                                         : start_replacement(executable_, arguments_, fds, names,
                                                             write_end.get(), error);
    if (pid < 0) {
        spdlog::error("SIGUSR2: cannot replace postern: {}", error);
        return;
    }
    child_ = pid;
    ready_ = std::move(read_end);
    ready_event_.reset(event_new(base_, ready_.get(), EV_READ | EV_PERSIST,
                                 &event_cb<Replacement, &Replacement::on_ready_pipe>, this));
    event_add(ready_event_.get(), nullptr);
    spdlog::info("SIGUSR2: starting a replacement: {} (pid {}) with {} listening socket(s){}",
                 executable_, pid, fds.size(),
                 helper_ != nullptr ? ", through the privileged helper" : "");
}

void Replacement::on_ready_pipe() {
    char byte = 0;
    const ssize_t n = ::read(ready_.get(), &byte, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    ready_event_.reset();
    ready_.reset();
    const pid_t child = std::exchange(child_, -1);
    if (n == 1) {
        spdlog::info("replacement process {} is ready; this process stops accepting and drains",
                     child);
        on_ready_(child);
        return;
    }
    // It closed the pipe without a byte: it exited (or is exiting) before it was ready. The
    // helper's child is the helper's to reap (and it logs how it ended); our own is given a
    // second at most to finish exiting, since this is the main loop.
    int status = 0;
    pid_t reaped = -1;
    if (helper_ == nullptr) {
        const UniqueFd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, child, 0U))};
        pollfd ended{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
        if (pidfd.get() >= 0) {
            (void)::poll(&ended, 1, 1000);
        }
        reaped = ::waitpid(child, &status, WNOHANG);
    }
    std::string how = "closed its ready pipe";
    if (reaped == child && WIFEXITED(status)) {
        how = "exited with status " + std::to_string(WEXITSTATUS(status));
    } else if (reaped == child && WIFSIGNALED(status)) {
        how = "was killed by signal " + std::to_string(WTERMSIG(status));
    }
    spdlog::error(
        "replacement process {} {} before it was ready (its log says why); still "
        "serving",
        child, how);
}

void Replacement::fail_internal(const char* what) const {
    spdlog::error("replacement: {}", what);
}

Predecessor Predecessor::from_environment() {
    Predecessor out;
    // At startup, before any thread exists: getenv and unsetenv cannot race.
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    const char* text = std::getenv(kReadyVariable);
    int fd = -1;
    if (text != nullptr) {
        const std::string_view view{text};
        const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), fd);
        if (ec == std::errc{} && end == view.data() + view.size() && fd > 2 &&
            ::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) {
            out.pipe_.reset(fd);
        }
    }
    ::unsetenv(kReadyVariable);  // NOLINT(concurrency-mt-unsafe): see above
    return out;
}

void Predecessor::ready() {
    if (pipe_.get() < 0) {
        return;
    }
    const char byte = '1';
    if (::write(pipe_.get(), &byte, 1) != 1) {
        spdlog::warn("cannot tell the process this one replaces that it is ready: {}",
                     errno_text(errno));
    }
    pipe_.reset();
}

}  // namespace postern::proxy
