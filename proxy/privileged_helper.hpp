#pragma once
// The privileged helper: what stays root when `postern run` gives up its privileges
// (server.user), as OpenSSH's and OpenSMTPD's privileged parents and nginx's master do. Forked
// before any thread exists, it closes every descriptor but its two sockets and stderr, and
// answers one request: "snapshot", for which it reads the config file itself (its path fixed at
// fork) and what that config names (conf::take_file_snapshot), whatever the request holds. It
// watches the folders of what it read (proxy/folder_watch.hpp) and tells the main process
// "changed"; the main process's Reloader debounces and asks for a snapshot, as for its own
// inotify. It never parses TLS or client bytes, and it exits when the main process goes
// (its socket closes, or PR_SET_PDEATHSIG).
//
// Two socketpairs (proxy/helper_channel.hpp): requests (one in flight at a time, from the
// Reloader's builder thread) and events (helper -> main loop), so a reply is never mixed with a
// "changed".

#include "conf/file_snapshot.hpp"
#include "proxy/event.hpp"

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <sys/types.h>

namespace postern::proxy {

class PrivilegedHelper {
public:
    // Forks the helper for `config_file` (absolute). Call before any thread exists. Null, with
    // the reason, when it cannot.
    [[nodiscard]] static std::unique_ptr<PrivilegedHelper> start(
        const std::filesystem::path& config_file, std::string& error);

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

    // Readable when the helper has news (non-blocking).
    [[nodiscard]] int events_fd() const noexcept { return events_.get(); }

    enum class Events : std::uint8_t { None, Changed, Gone };
    // Reads what the events socket holds: Changed when a "changed" came, Gone at EOF.
    [[nodiscard]] Events read_events();

private:
    pid_t pid_;
    std::mutex request_mutex_;
    UniqueFd requests_;
    UniqueFd events_;
};

}  // namespace postern::proxy
