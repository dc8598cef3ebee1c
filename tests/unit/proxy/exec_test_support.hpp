#pragma once
// What the exec connector and child reaper tests share: a loop with its reaper, a session's
// request through them, the log captured, and ways to watch a process.

#include "proxy/child_reaper.hpp"
#include "proxy/exec_connector.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace postern::proxy::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline conf::BackendSpec exec_backend(std::vector<std::string> argv) {
    conf::BackendSpec spec;
    spec.name = "prog";
    spec.key_name = "backend[1]";
    spec.exec.argv = std::move(argv);
    return spec;
}

// Captures the log lines (the default logger) for the test's life.
struct LogCapture {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
    std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

    LogCapture() {
        auto logger = std::make_shared<spdlog::logger>("capture", sink);
        logger->set_pattern("%l %v");
        logger->set_level(spdlog::level::debug);
        spdlog::set_default_logger(logger);
    }
    ~LogCapture() { spdlog::set_default_logger(previous); }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;
    LogCapture(LogCapture&&) = delete;
    LogCapture& operator=(LogCapture&&) = delete;

    [[nodiscard]] std::vector<std::string> lines() const { return sink->last_formatted(); }
    [[nodiscard]] std::size_t count(std::string_view needle) const {
        std::size_t n = 0;
        for (const auto& line : lines()) {
            n += line.find(needle) != std::string::npos ? 1U : 0U;
        }
        return n;
    }
};

inline void on_attempt(evutil_socket_t /*fd*/, short /*what*/, void* arg) {
    ++*static_cast<int*>(arg);
}

inline void tick(evutil_socket_t /*fd*/, short /*what*/, void* /*arg*/) {}

// One worker's loop and reaper, a session's request through them.
struct Loop {
    EventBasePtr base{event_base_new()};
    ChildReaper reaper;
    EventPtr ticker;  // keeps the loop turning while a test waits for a condition
    int heard = 0;

    explicit Loop(std::chrono::milliseconds kill_after = 300ms) : reaper(base.get(), kill_after) {
        ticker.reset(event_new(base.get(), -1, EV_PERSIST, &tick, nullptr));
        const timeval every = to_timeval(10ms);
        event_add(ticker.get(), &every);
    }

    BackendRequest request(ClientInfo client = {}) {
        return {.base = base.get(),
                .callback = &on_attempt,
                .arg = &heard,
                .client = client,
                .children = &reaper};
    }

    // Runs the loop until `done` or `limit` passes; returns done().
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) const {
        const auto until = Clock::now() + limit;
        while (!done() && Clock::now() < until) {
            REQUIRE(event_base_loop(base.get(), EVLOOP_ONCE) == 0);
        }
        return done();
    }

    // connect() and the attempt's event: the outcome a session would get.
    BackendOutcome start(const ExecConnector& connector, ClientInfo client = {}) {
        BackendOutcome outcome;
        auto attempt = connector.connect(request(client), outcome);
        REQUIRE_MESSAGE(attempt != nullptr, outcome.failure);
        REQUIRE(run_until([this] { return heard > 0; }));
        CHECK(attempt->on_event(EV_WRITE, outcome));
        REQUIRE(outcome.fd.get() >= 0);
        REQUIRE(outcome.child != nullptr);
        return outcome;
    }

    // Everything the program writes to its stdout until it closes it.
    std::string read_all(int fd) const {
        std::string out;
        std::array<char, 4096> buffer{};
        bool eof = false;
        run_until([&] {
            const ssize_t n = ::read(fd, buffer.data(), buffer.size());
            if (n > 0) {
                out.append(buffer.data(), static_cast<std::size_t>(n));
            }
            eof = n == 0 || (n < 0 && errno != EAGAIN);
            return eof;
        });
        CHECK(eof);
        return out;
    }
};

// True once `pid` runs `name` (it has exec'd it, so a trap set before is in force).
inline bool runs(pid_t pid, std::string_view name) {
    std::array<char, 64> comm{};
    const std::string path = "/proc/" + std::to_string(pid) + "/comm";
    const UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    return fd.get() >= 0 && ::read(fd.get(), comm.data(), comm.size() - 1) > 0 &&
           std::string_view(comm.data()).starts_with(name);
}

inline bool gone(pid_t pid) {
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

inline std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

}  // namespace postern::proxy::test
