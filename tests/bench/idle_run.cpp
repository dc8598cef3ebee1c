// The idle scenario: N sessions opened and then held silent, for the caller to measure the
// proxy's memory and CPU while they are held.

#include "tests/bench/report.hpp"
#include "tests/bench/scenario.hpp"
#include "tests/bench/scenarios.hpp"

#include <array>
#include <chrono>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace postern::bench {
namespace {

using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::microseconds;

class IdleRun final : public Scenario {
public:
    IdleRun(const Target& target, const IdleOptions& options)
        : Scenario(target, options.hold_seconds + 600), options_(options) {}

    int run() {
        launch();
        const bool finished = loop();
        JsonLine line;
        line.add("scenario", "idle")
            .add("sessions", ready_)
            .add("errors", errors_)
            .add("dropped", dropped_)
            .add("setup_seconds", setup_seconds_)
            .add("held_seconds", holding_ ? seconds_between(held_at_, Clock::now()) : 0.0)
            .add("last_error", last_error_);
        line.print();
        if (!finished) {
            return 2;
        }
        return ready_ > 0 ? 0 : 1;
    }

    void on_ready(Conn& /*conn*/) override {
        ++ready_;
        --opening_;
        launch();
    }

    void on_failed(Conn& conn, std::string_view why) override {
        if (holding_) {
            ++dropped_;  // the proxy (or backend) closed an idle session
            last_error_.assign(why.substr(0, 300));
        } else {
            note_error(why);
            --opening_;
        }
        retire(conn);
        launch();
    }

private:
    void launch() {
        if (holding_) {
            return;
        }
        while (opening_ < options_.concurrency && started_ < options_.sessions &&
               errors_ < kMaxErrors) {
            ++started_;
            ++opening_;
            if (open(nullptr) == nullptr) {
                --opening_;
            }
        }
        if (opening_ == 0) {
            hold();
        }
    }

    // Every session is open (or failed): say so, then wait for stdin to close.
    void hold() {
        holding_ = true;
        held_at_ = Clock::now();
        setup_seconds_ = seconds_between(start_, held_at_);
        JsonLine line;
        line.add("event", "ready")
            .add("sessions", ready_)
            .add("errors", errors_)
            .add("setup_seconds", setup_seconds_)
            .add("last_error", last_error_);
        line.print();
        // Closing stdin ends the hold; epoll cannot watch a regular file or /dev/null, so then
        // only the hold timer does.
        struct stat st {};
        if (::fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
            stdin_event_.reset(
                event_new(base(), STDIN_FILENO, EV_READ | EV_PERSIST, &stdin_cb, this));
            event_add(stdin_event_.get(), nullptr);
        }
        const auto hold = duration_cast<microseconds>(duration<double>(options_.hold_seconds));
        const timeval tv{static_cast<time_t>(hold.count() / 1'000'000),
                         static_cast<suseconds_t>(hold.count() % 1'000'000)};
        hold_timer_.reset(evtimer_new(base(), &hold_cb, this));
        event_add(hold_timer_.get(), &tv);
    }

    static void stdin_cb(evutil_socket_t fd, short /*what*/, void* self) noexcept {
        std::array<char, 256> buf{};
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n <= 0) {
            static_cast<IdleRun*>(self)->stop();
        }
    }

    static void hold_cb(evutil_socket_t /*fd*/, short /*what*/, void* self) noexcept {
        static_cast<IdleRun*>(self)->stop();
    }

    IdleOptions options_;
    std::size_t started_ = 0;
    std::size_t opening_ = 0;
    std::uint64_t ready_ = 0;
    std::uint64_t dropped_ = 0;
    bool holding_ = false;
    double setup_seconds_ = 0;
    Clock::time_point start_ = Clock::now();
    Clock::time_point held_at_ = start_;
    EventPtr stdin_event_;
    EventPtr hold_timer_;
};

}  // namespace

int run_idle(const Target& target, const IdleOptions& options) {
    IdleRun run(target, options);
    return run.run();
}

}  // namespace postern::bench
