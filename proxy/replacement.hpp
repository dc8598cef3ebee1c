#pragma once
// Replacing a running postern by a new one (a new binary, or a changed listener or backend
// config) without refusing or resetting a single connection, as nginx's binary upgrade does.
// On SIGUSR2 the running process starts its own executable again, with the same arguments, and
// hands it every listening socket the way socket activation does (LISTEN_FDS, read by
// proxy/inherited_sockets.hpp), so the accept queues never close: both processes accept from the
// same queues until the new one is ready. The new process says so by writing one byte into a
// pipe (POSTERN_READY_FD), at the moment it would tell systemd READY=1; the old one then drains
// its sessions and exits. If the new process exits first, the old one logs why it could not be
// replaced and goes on serving. Once postern runs as server.user, the privileged helper (root)
// starts the new process, so that it can bind and read what the old one could at its start.

#include "proxy/drain.hpp"
#include "proxy/event.hpp"
#include "proxy/listen_sockets.hpp"
#include "proxy/privileged_helper.hpp"

#include <functional>
#include <span>
#include <string>
#include <sys/types.h>
#include <vector>

namespace postern::proxy {

// This binary's path (/proc/self/exe), empty when unknown: read it at startup, since a package
// upgrade replaces the file.
[[nodiscard]] std::string own_executable();

// Fork+execs `executable` with `arguments` and this process's environment, `sockets` on fds 3..
// as LISTEN_FDS (named `names`) and `ready` right after them as POSTERN_READY_FD. The child's
// pid, or -1 with the reason. Call from a process whose other threads take no locks it needs
// (fork), or with none.
[[nodiscard]] pid_t start_replacement(const std::string& executable,
                                      const std::vector<std::string>& arguments,
                                      std::span<const int> sockets, const std::string& names,
                                      int ready, std::string& error);

class Replacement {
public:
    // `arguments`: the command line postern was started with (argv[1..]); `helper`: the
    // privileged helper when postern runs as server.user; `on_ready` runs on the main loop when
    // the new process is ready.
    Replacement(event_base* base, const ListenSockets& sockets, const Drain& drain,
                std::vector<std::string> arguments, PrivilegedHelper* helper,
                std::function<void(pid_t)> on_ready);
    Replacement(const Replacement&) = delete;
    Replacement& operator=(const Replacement&) = delete;
    Replacement(Replacement&&) = delete;
    Replacement& operator=(Replacement&&) = delete;
    ~Replacement() = default;

    // libevent entry points (proxy/trampoline.hpp)
    void on_signal();      // SIGUSR2: start the new process
    void on_ready_pipe();  // a byte: it is ready; end of file: it exited before that
    void fail_internal(const char* what) const;

private:
    event_base* base_;
    const ListenSockets& sockets_;
    const Drain& drain_;      // once started, SIGUSR2 is ignored
    std::string executable_;  // this binary's path, as it was at startup
    std::vector<std::string> arguments_;
    PrivilegedHelper* helper_;
    std::function<void(pid_t)> on_ready_;
    pid_t child_ = -1;
    UniqueFd ready_;  // read end of the child's ready pipe
    EventPtr ready_event_;
};

// The link from a process started by a Replacement to the process it replaces: the write end
// of the ready pipe, taken from the environment at startup (POSTERN_READY_FD, then removed).
class Predecessor {
public:
    [[nodiscard]] static Predecessor from_environment();

    // Whether this process replaces another one.
    [[nodiscard]] bool exists() const noexcept { return pipe_.get() >= 0; }
    // Tells the old process this one is ready (one byte, then the pipe is closed). Call once
    // every listener is bound and the certificates are loaded.
    void ready();

private:
    UniqueFd pipe_;
};

}  // namespace postern::proxy
