#pragma once
// The programs exec backends run (proxy/exec_connector.hpp), one per session, as one worker's
// loop sees them: each child's end is waited for without a SIGCHLD handler (a pidfd turns
// readable when its process ends; waitid(P_PIDFD), Linux 5.4, then reaps it), and each child's
// stderr is read there and logged line by line (proxy/stderr_log.hpp).
//
// Ownership: the reaper owns every child it adopted, from spawn until reaped, with its pidfd,
// its stderr pipe and their events. A session holds a ChildProcess, a handle whose end means
// "this session is done with the child": SIGTERM now (the session closed its end of the
// socketpair first, so a well-behaved program has already seen EOF), SIGKILL kill_after later
// unless it has ended. A child that ends on its own (the usual case: QUIT, then exit) is
// reaped at once, whoever still holds its handle; a handle is never used to signal a reaped
// child (its pid may be someone else's by then), since signals go through the pidfd.
// When a child is reaped, what its stderr pipe holds is logged and the pipe closed, even if a
// grandchild still holds the write end. The reaper forgets a child from its sweep event,
// never inside one of that child's callbacks.
//
// A child the privileged helper started (Spawned::parent set: a program that runs as another
// user than server.user) is watched the same way through the pidfd the helper sent, but the
// helper reaps it and logs its status, and signals reach it through the helper.
//
// At shutdown (shutdown(), or the destructor) whatever still runs gets SIGTERM, a bounded
// wait, then SIGKILL and another bounded wait: no zombie is left behind. One reaper per worker,
// used on that worker's thread only.

#include "proxy/event.hpp"
#include "proxy/spawn.hpp"
#include "proxy/stderr_log.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace postern::proxy {

class ChildReaper;

// A session's hold on its backend's process; destroying it hands the process over to be ended.
class ChildProcess {
public:
    ChildProcess(ChildReaper& reaper, std::uint64_t id, pid_t pid) noexcept
        : reaper_(reaper), id_(id), pid_(pid) {}
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ChildProcess(ChildProcess&&) = delete;
    ChildProcess& operator=(ChildProcess&&) = delete;
    ~ChildProcess();

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

private:
    ChildReaper& reaper_;
    std::uint64_t id_;
    pid_t pid_;
};

class ChildReaper {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kKillAfter{5000};
    static constexpr std::chrono::milliseconds kShutdownGrace{2000};

    explicit ChildReaper(event_base* base, std::chrono::milliseconds kill_after = kKillAfter);
    ChildReaper(const ChildReaper&) = delete;
    ChildReaper& operator=(const ChildReaper&) = delete;
    ChildReaper(ChildReaper&&) = delete;
    ChildReaper& operator=(ChildReaper&&) = delete;
    ~ChildReaper();

    // Takes over a just-spawned child and the read end of its stderr pipe (non-blocking).
    // Null with `error` set when the loop cannot watch it; the child is then killed and reaped.
    [[nodiscard]] std::unique_ptr<ChildProcess> adopt(Spawned spawned, UniqueFd stderr_pipe,
                                                      std::shared_ptr<StderrLog> log,
                                                      std::string& error);

    // Children not reaped yet.
    [[nodiscard]] std::size_t running() const noexcept;

    // Ends every child still running, blocking until `deadline` at most for them to go after
    // SIGTERM, then SIGKILL and at most one more second. For when the loop no longer runs.
    void shutdown(Clock::time_point deadline);

    void fail_internal(const char* what) const;

private:
    friend class ChildProcess;
    struct Child;

    void release(std::uint64_t id) noexcept;
    void reaped(Child& child);
    void sweep();

    event_base* base_;
    std::chrono::milliseconds kill_after_;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<Child>> children_;
    std::vector<std::uint64_t> done_;  // reaped: forgotten by the next sweep
    EventPtr sweep_;
};

}  // namespace postern::proxy
