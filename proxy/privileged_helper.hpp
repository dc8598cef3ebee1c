#pragma once
// The privileged helper: what stays root when `postern run` gives up its privileges
// (server.user), as OpenSSH's and OpenSMTPD's privileged parents and nginx's master do. Forked
// before any thread exists, it closes every descriptor but its two sockets and stderr, and
// answers (proxy/helper_serve.hpp):
// - "snapshot": it reads the config file itself (its path fixed at fork) and what that config
//   names (conf::take_file_snapshot), whatever the request holds;
// - "spawn": it starts an exec backend's program that runs as another user than server.user,
//   on the descriptors sent with the request, if a config it read names that program and user
//   (proxy/helper_orders.hpp), and answers with a pidfd; it reaps its children and signals
//   only them ("signal");
// - "replace" (SIGUSR2): it starts postern's own executable again, with the arguments fixed at
//   fork and the listening sockets sent with the request (proxy/replacement.hpp).
// It watches the folders of what it read (proxy/folder_watch.hpp) and tells the main process
// "changed"; the main process's Reloader debounces and asks for a snapshot, as for its own
// inotify. It never parses TLS or client bytes, and it exits when the main process goes
// (its socket closes, or PR_SET_PDEATHSIG).
//
// Two socketpairs (proxy/helper_channel.hpp): requests (one in flight at a time, from any
// thread) and events (helper -> main loop), so a reply is never mixed with a "changed".

#include "conf/file_snapshot.hpp"
#include "proxy/event.hpp"
#include "proxy/helper_channel.hpp"
#include "proxy/helper_orders.hpp"
#include "proxy/spawn.hpp"

#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <sys/types.h>
#include <vector>

namespace postern::proxy {

// What the helper is started with, and never takes from the main process.
struct HelperLaunch {
    std::filesystem::path config_file;   // absolute
    std::string executable;              // postern's, as it was at startup
    std::vector<std::string> arguments;  // argv[1..]
};

class PrivilegedHelper final : public ProcessParent {
public:
    // Forks the helper. Call before any thread exists. Null, with the reason, when it cannot.
    [[nodiscard]] static std::unique_ptr<PrivilegedHelper> start(const HelperLaunch& launch,
                                                                 std::string& error);

    PrivilegedHelper(pid_t pid, UniqueFd requests, UniqueFd events)
        : pid_(pid), requests_(std::move(requests)), events_(std::move(events)) {}
    PrivilegedHelper(const PrivilegedHelper&) = delete;
    PrivilegedHelper& operator=(const PrivilegedHelper&) = delete;
    PrivilegedHelper(PrivilegedHelper&&) = delete;
    PrivilegedHelper& operator=(PrivilegedHelper&&) = delete;
    // Closes the sockets (the helper exits on EOF) and reaps it.
    ~PrivilegedHelper();

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    // Blocking: the helper's snapshot of the config and what it names, sealed. Null, with the
    // reason, when the helper is gone or answered nonsense. Any thread; one request at a time.
    [[nodiscard]] std::shared_ptr<const conf::FileSnapshot> snapshot(std::string& error);

    // Blocking: the helper starts `order`'s program on `stdio` and `stderr_fd` (duplicated to
    // it) and hands back its pid and pidfd (`out.parent` is this helper). False with the reason
    // ("exec /usr/bin/x: Permission denied") otherwise.
    [[nodiscard]] bool spawn(const SpawnOrder& order, int stdio, int stderr_fd, Spawned& out,
                             std::string& error);
    // A signal for a child the helper spawned (SIGTERM or SIGKILL); no answer.
    void signal(pid_t pid, int number) override;
    // Blocking: the helper starts postern again with `sockets` as LISTEN_FDS (named `names`,
    // LISTEN_FDNAMES) and `ready` as its ready pipe. Its pid, or -1 with the reason.
    [[nodiscard]] pid_t replace(std::span<const int> sockets, const std::string& names, int ready,
                                std::string& error);

    // Readable when the helper has news (non-blocking).
    [[nodiscard]] int events_fd() const noexcept { return events_.get(); }

    enum class Events : std::uint8_t { None, Changed, Gone };
    // Reads what the events socket holds: Changed when a "changed" came, Gone at EOF.
    [[nodiscard]] Events read_events();

private:
    // One request and its answer; nullopt (with `error`) when the helper is gone.
    [[nodiscard]] std::optional<Frame> ask(HelperMessage type, std::string_view payload,
                                           std::span<const int> fds, std::string& error);

    pid_t pid_;
    std::mutex request_mutex_;
    UniqueFd requests_;
    UniqueFd events_;
};

}  // namespace postern::proxy
