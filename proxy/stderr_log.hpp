#pragma once
// An exec backend's stderr in postern's log: each line a child writes, as
// "<backend>[<pid>]: <line>" at info (a UCSPI program's stderr is its log: Courier's
// "INFO: LOGIN, user=...", qmail's errors), escaped like every untrusted string. One per
// backend, shared by the children of every worker (hence the mutex), so that a chatty child,
// or many, cannot flood the log: at most `per_second` lines per second for the backend, the
// rest counted and reported as one "suppressed N line(s)" line when the next second's first
// line comes, or when a child ends (flush()).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace postern::proxy {

class StderrLog {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr unsigned kLinesPerSecond = 100;
    static constexpr std::size_t kMaxLine = 1024;  // longer lines are cut there

    explicit StderrLog(std::string backend, unsigned per_second = kLinesPerSecond)
        : backend_(std::move(backend)), per_second_(per_second) {}

    [[nodiscard]] const std::string& backend() const noexcept { return backend_; }

    // One line from child `pid` (without its newline).
    void line(pid_t pid, std::string_view text, Clock::time_point now = Clock::now());
    // Reports the lines suppressed so far, if any.
    void flush();

    [[nodiscard]] std::uint64_t suppressed_total() const;

private:
    void report_suppressed();  // with mutex_ held

    const std::string backend_;
    const unsigned per_second_;
    mutable std::mutex mutex_;
    Clock::time_point window_{};  // the second being counted
    unsigned logged_ = 0;         // lines logged in it
    std::uint64_t suppressed_ = 0;
    std::uint64_t suppressed_total_ = 0;
};

}  // namespace postern::proxy
