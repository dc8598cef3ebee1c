#pragma once
// The drain: how postern stops without cutting sessions (SIGTERM or SIGINT, and the old process
// when a new one takes over the listening sockets). start() has every worker stop accepting at
// once and drain its sessions on its own loop (Worker::drain, Session::drain): each ends
// politely at its next quiet moment between commands, or when a command arrives; the main loop
// ends when every worker holds no session, or when server.shutdown_timeout has passed, or at
// hurry() (a second signal); run() then stops whatever is left (Session::stop) and exits 0.
// shutdown_timeout = 0: no drain, everything is stopped at once.
//
// Runs on the main thread (worker 0's loop); workers report through worker_drained(), from
// their own threads, which wakes that loop (libevent's pthread notification).

#include "proxy/event.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace postern::proxy {

class Balancer;
class Worker;

class Drain {
public:
    using Clock = std::chrono::steady_clock;

    enum class End : std::uint8_t {
        Running,
        Drained,    // every session ended
        Deadline,   // shutdown_timeout passed
        Hurried,    // a second signal
        Immediate,  // shutdown_timeout = 0
    };

    // `balancer`: null with one worker (the counts are then worker 0's own). Everything given
    // outlives this object.
    Drain(event_base* main_base, const std::vector<std::unique_ptr<Worker>>& workers,
          const Balancer* balancer, std::chrono::milliseconds timeout);

    // The one entry point: stop accepting and drain (main thread). `why` for the log.
    void start(const std::string& why);
    // Close everything now: ends the main loop.
    void hurry();
    [[nodiscard]] bool started() const noexcept { return started_.load(std::memory_order_relaxed); }
    [[nodiscard]] End end() const noexcept { return end_; }
    // Logs how the drain ended, with the sessions `run()` is about to stop (every loop has
    // stopped: the workers' own counts).
    void log_end() const;

    // Any thread: a worker holds no session now.
    void worker_drained();

    // libevent entry points (proxy/trampoline.hpp)
    void on_wake();
    void on_deadline();
    void fail_internal(const char* what) const;

private:
    void finish(End end);

    event_base* main_base_;
    // " (per worker: 3, 2)" with several workers, else empty.
    template <typename Count>
    [[nodiscard]] std::string per_worker_text(Count count) const {
        if (workers_.size() < 2) {
            return {};
        }
        std::string text;
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            text += (i == 0 ? " (per worker: " : ", ") + std::to_string(count(i));
        }
        return text + ")";
    }

    const std::vector<std::unique_ptr<Worker>>& workers_;
    const Balancer* balancer_;
    std::chrono::milliseconds timeout_;
    EventPtr wake_;
    EventPtr deadline_;
    Clock::time_point began_{};
    std::atomic<bool> started_ = false;  // also read by the metrics endpoint's thread
    End end_ = End::Running;
};

}  // namespace postern::proxy
