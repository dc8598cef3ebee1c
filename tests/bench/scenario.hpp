#pragma once
// What the generator's four runs (handshake_run.cpp, throughput_run.cpp, latency_run.cpp,
// idle_run.cpp) share: the Scenario base that owns the event loop and the connections, Turns for
// loading several targets one slice at a time, and a few time helpers. Internal to those files;
// bench_main.cpp sees only scenarios.hpp.

#include "tests/bench/conn.hpp"
#include "tests/bench/handles.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace postern::bench {

// A run with this many failed connections is broken; it stops instead of hammering on.
inline constexpr std::uint64_t kMaxErrors = 50;

inline double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

inline double micros(Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count();
}

inline Clock::duration from_seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// What every scenario shares: the event loop, a 100 ms tick that fails overdue connections and
// frees retired ones (never inside their own callbacks), and a hard time limit.
class Scenario : public ConnOwner {
public:
    Scenario(const Target& target, double hard_limit_seconds);
    Scenario(const Scenario&) = delete;
    Scenario& operator=(const Scenario&) = delete;
    Scenario(Scenario&&) = delete;
    Scenario& operator=(Scenario&&) = delete;
    virtual ~Scenario();

    // Runs until stop(); false when the hard limit ended it.
    bool loop() {
        event_base_dispatch(base_.get());
        return !timed_out_;
    }

    void on_reply(Conn& /*conn*/, std::uint64_t /*payload*/) override {}

protected:
    // A new connection, started; nullptr (with the error counted) when it failed at once.
    Conn* open(SSL_SESSION* resume, const Target* to = nullptr);

    // Closes a connection; it is freed on the next tick.
    void retire(Conn& conn);

    void note_error(std::string_view why) {
        ++errors_;
        last_error_.assign(why.substr(0, 300));
    }

    // The generator's exit status for runs that allow no error: 2 cut short, 1 nothing
    // measured or an error, 0 done.
    [[nodiscard]] int exit_status(bool finished, std::uint64_t measured) const noexcept {
        if (!finished) {
            return 2;
        }
        return measured > 0 && errors_ == 0 ? 0 : 1;
    }

    void stop() { event_base_loopbreak(base_.get()); }
    [[nodiscard]] event_base* base() const noexcept { return base_.get(); }
    [[nodiscard]] std::size_t live() const noexcept { return live_.size(); }
    [[nodiscard]] const Target& target() const noexcept { return target_; }
    template <class F>
    void for_each_live(F&& f) {
        std::vector<Conn*> conns;
        conns.reserve(live_.size());
        for (auto& [conn, owned] : live_) {
            conns.push_back(conn);
        }
        for (Conn* c : conns) {
            f(*c);
        }
    }

    std::uint64_t errors_ = 0;
    std::string last_error_;

private:
    static void tick_cb(evutil_socket_t /*fd*/, short /*what*/, void* self) noexcept {
        static_cast<Scenario*>(self)->tick();
    }

    void tick() noexcept;

    const Target& target_;
    EventBasePtr base_;
    EventPtr tick_;
    Clock::time_point hard_limit_;
    bool timed_out_ = false;
    std::unordered_map<Conn*, std::unique_ptr<Conn>> live_;
    std::vector<std::unique_ptr<Conn>> graveyard_;
};

// Whose turn it is when several targets are loaded one slice at a time: every target once per
// cycle, in a new random order each cycle (a fixed seed, so two runs shuffle alike). One target
// gets a single slice of the whole run.
class Turns {
public:
    Turns(std::size_t targets, double seconds, double slice);

    [[nodiscard]] std::size_t current() const noexcept { return order_[position_]; }
    [[nodiscard]] Clock::duration slice() const noexcept { return slice_; }

    // The next target's turn; false once every cycle is done.
    bool next();

private:
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    std::size_t cycle_ = 0;
    std::size_t cycles_ = 1;
    Clock::duration slice_{};
    std::minstd_rand random_{20261122};
};

}  // namespace postern::bench
