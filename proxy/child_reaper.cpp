#include "proxy/child_reaper.hpp"

#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

// One stderr event reads at most this much, then lets the loop serve the others.
constexpr std::size_t kReadBudget = std::size_t{64} * 1024;
// After SIGKILL at shutdown: how long to wait for the kernel to take the processes down.
constexpr std::chrono::seconds kKillWait{1};

}  // namespace

struct ChildReaper::Child {
    ChildReaper& reaper;
    std::uint64_t id;
    pid_t pid;
    UniqueFd pidfd;
    ProcessParent* parent;  // null: ours to signal and reap
    UniqueFd err;
    std::shared_ptr<StderrLog> log;
    std::string partial;  // a line not finished yet
    bool released = false;
    bool alive = true;  // not reaped yet
    // Declared after the descriptors: freed before they are closed.
    EventPtr exited;  // EV_READ on the pidfd: the process ended
    EventPtr output;  // EV_READ | EV_PERSIST on the stderr pipe
    EventPtr kill;    // SIGKILL, kill_after after the release

    Child(ChildReaper& owner, std::uint64_t child_id, Spawned spawned, UniqueFd stderr_pipe,
          std::shared_ptr<StderrLog> stderr_log)
        : reaper(owner),
          id(child_id),
          pid(spawned.pid),
          pidfd(std::move(spawned.pidfd)),
          parent(spawned.parent),
          err(std::move(stderr_pipe)),
          log(std::move(stderr_log)) {}

    void on_exited() {
        if (!try_reap()) {
            event_add(exited.get(), nullptr);  // not yet (spurious): wait on
        }
    }

    void on_output() {
        if (!read_stderr(kReadBudget)) {
            close_stderr();
        }
    }

    void on_kill() {
        if (alive) {
            spdlog::info("{}[{}]: still running {} ms after SIGTERM; sending SIGKILL",
                         log->backend(), pid, reaper.kill_after_.count());
            signal(SIGKILL);
        }
    }

    void fail_internal(const char* what) const {
        spdlog::error("{}[{}]: internal error while watching the program: {}", log->backend(), pid,
                      what);
    }

    // Through the pidfd: never a pid that may have been reused. (The syscall: glibc 2.36's
    // <sys/pidfd.h> declares pidfd_send_signal() without C linkage.)
    // Another parent's child: through that parent, which reaps it, so its pid is not reused
    // before that parent hears of it.
    void signal(int number) const noexcept {
        if (alive && parent != nullptr) {
            parent->signal(pid, number);
        } else if (alive) {
            (void)::syscall(SYS_pidfd_send_signal, pidfd.get(), number, nullptr, 0U);
        }
    }

    // True once the process is reaped (now or before).
    bool try_reap() {
        if (!alive) {
            return true;
        }
        if (parent != nullptr) {  // its parent reaps it and logs how it ended
            pollfd ended{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
            if (::poll(&ended, 1, 0) <= 0) {
                return false;
            }
            reaper.reaped(*this);
            return true;
        }
        siginfo_t info{};
        int rc = 0;
        do {
            rc = ::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED | WNOHANG);
            if (rc != 0 && errno == EINVAL) {  // Linux 5.3: pidfds, but no P_PIDFD yet
                rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG);
            }
        } while (rc != 0 && errno == EINTR);
        if (rc != 0 && errno != ECHILD) {
            return false;
        }
        if (rc == 0 && info.si_pid == 0) {
            return false;  // still running
        }
        log_end(rc == 0 ? &info : nullptr);
        reaper.reaped(*this);
        return true;
    }

    void log_end(const siginfo_t* info) const {
        const std::string& backend = log->backend();
        if (info == nullptr) {
            spdlog::warn("{}[{}]: reaped elsewhere (is SIGCHLD ignored?)", backend, pid);
        } else if (info->si_code == CLD_EXITED) {
            spdlog::log(info->si_status == 0 ? spdlog::level::debug : spdlog::level::info,
                        "{}[{}]: exited with status {}", backend, pid, info->si_status);
        } else {
            const bool ours =
                released && (info->si_status == SIGTERM || info->si_status == SIGKILL);
            spdlog::log(ours ? spdlog::level::debug : spdlog::level::info,
                        "{}[{}]: ended by signal {}", backend, pid, info->si_status);
        }
    }

    // Reads what the pipe holds, at most `budget` bytes; false once it is closed (EOF, error).
    bool read_stderr(std::size_t budget) {
        std::array<char, 4096> buffer{};
        while (err.get() >= 0 && budget > 0) {
            const ssize_t n = ::read(err.get(), buffer.data(), std::min(buffer.size(), budget));
            if (n > 0) {
                lines({buffer.data(), static_cast<std::size_t>(n)});
                budget -= static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
            }
        }
        return err.get() >= 0;
    }

    void lines(std::string_view data) {
        for (const char c : data) {
            if (c == '\n') {
                emit();
            } else {
                if (partial.size() == StderrLog::kMaxLine) {
                    emit();  // a line that long is logged in pieces
                }
                partial.push_back(c);
            }
        }
    }

    void emit() {
        if (!partial.empty() && partial.back() == '\r') {
            partial.pop_back();
        }
        log->line(pid, partial);
        partial.clear();
    }

    void close_stderr() {
        if (err.get() < 0) {
            return;
        }
        if (!partial.empty()) {
            emit();
        }
        if (output) {
            event_del(output.get());
        }
        err.reset();
        log->flush();
    }
};

ChildProcess::~ChildProcess() {
    reaper_.release(id_);
}

ChildReaper::ChildReaper(event_base* base, std::chrono::milliseconds kill_after)
    : base_(base), kill_after_(kill_after) {
    sweep_.reset(event_new(base_, -1, 0, &event_cb<ChildReaper, &ChildReaper::sweep>, this));
}

ChildReaper::~ChildReaper() {
    if (running() > 0) {
        shutdown(Clock::now() + kShutdownGrace);
    }
    children_.clear();  // before the sweep event and the loop go
}

std::unique_ptr<ChildProcess> ChildReaper::adopt(Spawned spawned, UniqueFd stderr_pipe,
                                                 std::shared_ptr<StderrLog> log,
                                                 std::string& error) {
    const std::uint64_t id = next_id_++;
    auto child = std::make_unique<Child>(*this, id, std::move(spawned), std::move(stderr_pipe),
                                         std::move(log));
    Child* raw = child.get();
    raw->exited.reset(
        event_new(base_, raw->pidfd.get(), EV_READ, &event_cb<Child, &Child::on_exited>, raw));
    raw->output.reset(event_new(base_, raw->err.get(), EV_READ | EV_PERSIST,
                                &event_cb<Child, &Child::on_output>, raw));
    const event_callback_fn on_kill = &event_cb<Child, &Child::on_kill>;
    raw->kill.reset(evtimer_new(base_, on_kill, raw));
    if (!sweep_ || !raw->exited || !raw->output || !raw->kill ||
        event_add(raw->exited.get(), nullptr) != 0 || event_add(raw->output.get(), nullptr) != 0) {
        error = "cannot watch the program on the event loop";
        raw->signal(SIGKILL);
        siginfo_t info{};
        while (raw->parent == nullptr &&
               ::waitid(P_PIDFD, static_cast<id_t>(raw->pidfd.get()), &info, WEXITED) != 0 &&
               errno == EINTR) {
        }
        return nullptr;
    }
    const pid_t pid = raw->pid;
    children_.emplace(id, std::move(child));
    return std::make_unique<ChildProcess>(*this, id, pid);
}

std::size_t ChildReaper::running() const noexcept {
    return static_cast<std::size_t>(std::count_if(
        children_.begin(), children_.end(), [](const auto& entry) { return entry.second->alive; }));
}

void ChildReaper::release(std::uint64_t id) noexcept {
    const auto found = children_.find(id);
    if (found == children_.end() || !found->second->alive || found->second->released) {
        return;
    }
    Child& child = *found->second;
    child.released = true;
    child.signal(SIGTERM);
    const timeval wait = to_timeval(kill_after_);
    evtimer_add(child.kill.get(), &wait);
}

void ChildReaper::reaped(Child& child) {
    child.alive = false;
    // What the pipe holds now; a grandchild may hold its write end for long, and what it
    // writes later is lost.
    (void)child.read_stderr(kReadBudget);
    child.close_stderr();
    evtimer_del(child.kill.get());
    event_del(child.exited.get());
    child.pidfd.reset();
    done_.push_back(child.id);
    if (sweep_) {
        event_active(sweep_.get(), 0, 0);
    }
}

void ChildReaper::sweep() {
    std::vector<std::uint64_t> done;
    done.swap(done_);
    for (const std::uint64_t id : done) {
        children_.erase(id);
    }
}

void ChildReaper::shutdown(Clock::time_point deadline) {
    // Waits, without the loop, until every child is reaped or `until` passes.
    const auto wait_until = [this](Clock::time_point until) {
        std::vector<pollfd> fds;
        std::vector<Child*> watched;
        for (;;) {
            fds.clear();
            watched.clear();
            for (auto& [id, child] : children_) {
                if (child->alive) {
                    fds.push_back({.fd = child->pidfd.get(), .events = POLLIN, .revents = 0});
                    watched.push_back(child.get());
                }
            }
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
            if (fds.empty() || left.count() <= 0) {
                return;
            }
            if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) <= 0) {
                continue;  // EINTR, or the time is up (checked above)
            }
            for (std::size_t i = 0; i < fds.size(); ++i) {
                if (fds[i].revents != 0) {
                    (void)watched[i]->try_reap();
                }
            }
        }
    };
    for (auto& [id, child] : children_) {
        child->released = true;
        child->signal(SIGTERM);
    }
    wait_until(deadline);
    for (auto& [id, child] : children_) {
        if (child->alive) {
            spdlog::info("{}[{}]: still running at shutdown after SIGTERM; sending SIGKILL",
                         child->log->backend(), child->pid);
            child->signal(SIGKILL);
        }
    }
    wait_until(Clock::now() + kKillWait);
    for (auto& [id, child] : children_) {
        if (child->alive) {
            spdlog::error("{}[{}]: did not end after SIGKILL", child->log->backend(), child->pid);
        }
    }
    children_.clear();
    done_.clear();
}

void ChildReaper::fail_internal(const char* what) const {
    spdlog::error("child reaper: {}", what);
}

}  // namespace postern::proxy
