// The handshake scenario: new connections per second to a ready session (greeting read), full
// or resumed, with the setup time of each.

#include "tests/bench/report.hpp"
#include "tests/bench/scenario.hpp"
#include "tests/bench/scenarios.hpp"

#include <string>
#include <utility>
#include <vector>

namespace postern::bench {
namespace {

// One target: `concurrency` connections in flight for the whole run. Several targets (proxies
// side by side): each one takes the load in turn, one slice at a time, in a new random order
// every cycle; a slice ends when its last connection has finished, so each target's rate is
// its handshakes over the time it alone was loaded.
class HandshakeRun final : public Scenario {
public:
    HandshakeRun(const std::vector<Target>& targets, std::vector<SessionStore*> stores,
                 const HandshakeOptions& options)
        : Scenario(targets.front(), (options.seconds * static_cast<double>(targets.size())) + 60),
          targets_(targets),
          stores_(std::move(stores)),
          options_(options),
          per_target_(targets.size()),
          turns_(targets.size(), options.seconds, options.slice) {}

    int run() {
        if (options_.resume) {
            prime();  // one full handshake per target to get a ticket, not counted
        } else {
            begin();
        }
        const bool finished = loop();
        return report(finished);
    }

    void on_ready(Conn& conn) override {
        retire(conn);
        if (priming_) {
            if (++primed_ < targets_.size()) {
                prime();
            } else {
                priming_ = false;
                begin();
            }
            return;
        }
        Stats& stats = per_target_[active()];
        ++stats.completed;
        stats.resumed += conn.resumed() ? 1U : 0U;
        stats.setup_us.push_back(micros(Clock::now() - conn.started()));
        launch();
    }

    void on_failed(Conn& conn, std::string_view why) override {
        note_error(why);
        Stats& stats = per_target_[priming_ ? primed_ : active()];
        ++stats.errors;
        stats.last_error.assign(why.substr(0, 300));
        retire(conn);
        if (priming_) {
            stop();
            return;
        }
        launch();
    }

private:
    struct Stats {
        std::uint64_t errors = 0;
        std::string last_error;
        std::uint64_t started = 0;
        std::uint64_t completed = 0;
        std::uint64_t resumed = 0;
        std::vector<double> setup_us;
        double seconds = 0;  // time this target was loaded
    };

    [[nodiscard]] std::size_t active() const noexcept { return turns_.current(); }

    void prime() {
        priming_ = true;
        if (open(nullptr, &targets_[primed_]) == nullptr) {
            stop();
        }
    }

    void begin() { start_slice(); }

    void start_slice() {
        slice_start_ = Clock::now();
        slice_end_ = slice_start_ + turns_.slice();
        launch();
    }

    void launch() {
        const std::size_t t = active();
        Stats& stats = per_target_[t];
        SessionStore* store = stores_[t];
        while (live() < options_.concurrency && stats.started < options_.count &&
               errors_ < kMaxErrors && Clock::now() < slice_end_) {
            ++stats.started;
            SSL_SESSION* resume = options_.resume && store != nullptr ? store->latest() : nullptr;
            (void)open(resume, &targets_[t]);
        }
        if (live() == 0) {
            end_slice();
        }
    }

    void end_slice() {
        per_target_[active()].seconds += seconds_between(slice_start_, Clock::now());
        if (errors_ >= kMaxErrors || !turns_.next()) {
            stop();
            return;
        }
        start_slice();
    }

    int report(bool finished) {
        std::uint64_t total = 0;
        for (std::size_t t = 0; t < targets_.size(); ++t) {
            Stats& stats = per_target_[t];
            total += stats.completed;
            const Percentiles p = percentiles(std::move(stats.setup_us));
            JsonLine line;
            line.add("scenario", "handshake")
                .add("connect", targets_[t].name)
                .add("completed", stats.completed)
                .add("errors", stats.errors)
                .add("resumed", stats.resumed)
                .add("tickets", stores_[t] != nullptr ? stores_[t]->received() : 0U)
                .add("seconds", stats.seconds)
                .add("rate",
                     stats.seconds > 0 ? static_cast<double>(stats.completed) / stats.seconds : 0.0)
                .add("setup_p50_us", p.p50)
                .add("setup_p99_us", p.p99)
                .add("last_error", stats.last_error);
            line.print();
        }
        if (!finished) {
            return 2;
        }
        return total > 0 ? 0 : 1;
    }

    std::vector<Target> targets_;
    std::vector<SessionStore*> stores_;  // per target; null entries when not resuming
    HandshakeOptions options_;
    std::vector<Stats> per_target_;
    Turns turns_;
    bool priming_ = false;
    std::size_t primed_ = 0;
    Clock::time_point slice_start_ = Clock::now();
    Clock::time_point slice_end_ = slice_start_;
};

}  // namespace

int run_handshake(const std::vector<Target>& targets, const std::vector<SessionStore*>& stores,
                  const HandshakeOptions& options) {
    HandshakeRun run(targets, stores, options);
    return run.run();
}

}  // namespace postern::bench
