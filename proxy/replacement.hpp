#pragma once
// Replacing a running postern by a new one (a new binary, or a changed listener or backend
// config) without refusing or resetting a single connection, as nginx's binary upgrade does.
// On SIGUSR2 the running process starts its own executable again, with the same arguments, and
// hands it every listening socket the way socket activation does (LISTEN_FDS, read by
// proxy/inherited_sockets.hpp), so the accept queues never close: both processes accept from the
// same queues until the new one is ready. The new process says so by writing one byte into a
// pipe (POSTERN_READY_FD), at the moment it would tell systemd READY=1; the old one then drains
// its sessions and exits. If the new process exits first, the old one logs why it could not be
// replaced and goes on serving.

#include "proxy/event.hpp"
#include "proxy/listen_sockets.hpp"

#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace postern::proxy {

class Replacement {
public:
    // `arguments`: the command line postern was started with (argv[1..]); `on_ready` runs on
    // the main loop when the new process is ready.
    Replacement(event_base* base, const ListenSockets& sockets, std::vector<std::string> arguments,
                std::function<void(pid_t)> on_ready);
    Replacement(const Replacement&) = delete;
    Replacement& operator=(const Replacement&) = delete;
    Replacement(Replacement&&) = delete;
    Replacement& operator=(Replacement&&) = delete;
    ~Replacement() = default;

    // SIGUSR2 is then answered with an error naming `why` (and nothing else happens).
    void refuse(std::string why) { refusal_ = std::move(why); }

    // libevent entry points (proxy/trampoline.hpp)
    void on_signal();      // SIGUSR2: start the new process
    void on_ready_pipe();  // a byte: it is ready; end of file: it exited before that
    void fail_internal(const char* what) const;

private:
    event_base* base_;
    const ListenSockets& sockets_;
    std::string executable_;  // this binary's path, as it was at startup
    std::vector<std::string> arguments_;
    std::function<void(pid_t)> on_ready_;
    std::string refusal_;
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
