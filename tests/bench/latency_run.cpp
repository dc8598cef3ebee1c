// The latency scenario: NOOP round trips through logged-in sessions, percentiles in
// microseconds.

#include "tests/bench/report.hpp"
#include "tests/bench/scenario.hpp"
#include "tests/bench/scenarios.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace postern::bench {
namespace {

// One target: every session keeps one NOOP in flight. Several targets (proxies side by side,
// and the backend directly): one session each and one NOOP in flight in all, sent to each
// target once per cycle in a new random order, so a burst of other work on the machine lands
// on every target alike instead of on whichever ran at that moment.
class LatencyRun final : public Scenario {
public:
    LatencyRun(const std::vector<Target>& targets, const LatencyOptions& options)
        : Scenario(targets.front(), options.seconds + 60),
          targets_(targets),
          options_(options),
          per_target_(targets.size()) {
        const auto reserve =
            static_cast<std::size_t>(std::min<std::uint64_t>(options.count, 1 << 22));
        for (Stats& s : per_target_) {
            s.warmup_left = options.warmup;
            s.samples.reserve(reserve);
        }
        order_.resize(targets.size());
        std::iota(order_.begin(), order_.end(), std::size_t{0});
    }

    int run() {
        const std::size_t sessions = interleaved() ? 1 : options_.sessions;
        for (std::size_t t = 0; t < targets_.size(); ++t) {
            for (std::size_t i = 0; i < sessions; ++i) {
                Conn* conn = open(nullptr, &targets_[t]);
                if (conn == nullptr) {
                    return report(true);
                }
                index_[conn] = t;
                conns_.push_back(conn);
            }
        }
        const bool finished = loop();
        return report(finished);
    }

    void on_ready(Conn& /*conn*/) override {
        if (++ready_ < conns_.size()) {
            return;
        }
        deadline_ = Clock::now() + from_seconds(options_.seconds);
        measuring_ = true;
        if (interleaved()) {
            next_cycle();
            send(*conns_[order_[0]]);
        } else {
            for_each_live([this](Conn& c) { send(c); });
        }
    }

    void on_reply(Conn& conn, std::uint64_t /*payload*/) override {
        const Clock::time_point now = Clock::now();
        if (!sent_.contains(&conn)) {
            return;
        }
        Stats& stats = per_target_[index_[&conn]];
        if (stats.warmup_left > 0) {
            --stats.warmup_left;
        } else {
            stats.samples.push_back(micros(now - sent_[&conn]));
        }
        sent_.erase(&conn);
        if (now >= deadline_ || enough()) {
            finish();
            return;
        }
        if (!interleaved()) {
            send(conn);
            return;
        }
        if (++position_ == order_.size()) {
            next_cycle();
        }
        send(*conns_[order_[position_]]);
    }

    void on_failed(Conn& conn, std::string_view why) override {
        note_error(why);
        sent_.erase(&conn);
        retire(conn);
        // Interleaved, one broken target stops the comparison: the others' figures would no
        // longer be taken over the same moments.
        if (!measuring_ || interleaved() || live() == 0) {
            finish();
        }
    }

private:
    struct Stats {
        std::uint64_t warmup_left = 0;
        std::vector<double> samples;
    };

    [[nodiscard]] bool interleaved() const noexcept { return targets_.size() > 1; }

    [[nodiscard]] bool enough() const noexcept {
        return std::all_of(per_target_.begin(), per_target_.end(),
                           [this](const Stats& s) { return s.samples.size() >= options_.count; });
    }

    void next_cycle() {
        std::shuffle(order_.begin(), order_.end(), random_);
        position_ = 0;
    }

    void send(Conn& conn) {
        sent_[&conn] = Clock::now();
        conn.request(noop_request(conn_protocol(conn), ++seq_));
    }

    [[nodiscard]] Protocol conn_protocol(Conn& conn) { return targets_[index_[&conn]].protocol; }

    void finish() {
        sent_.clear();
        for_each_live([this](Conn& c) { retire(c); });
        stop();
    }

    int report(bool finished) {
        std::uint64_t total = 0;
        for (std::size_t t = 0; t < targets_.size(); ++t) {
            Stats& stats = per_target_[t];
            const std::uint64_t n = stats.samples.size();
            total += n;
            const Percentiles p = percentiles(std::move(stats.samples));
            JsonLine line;
            line.add("scenario", "latency")
                .add("connect", targets_[t].name)
                .add("samples", n)
                .add("warmup", options_.warmup - stats.warmup_left)
                .add("errors", errors_)
                .add("p50_us", p.p50)
                .add("p99_us", p.p99)
                .add("p999_us", p.p999)
                .add("mean_us", p.mean)
                .add("max_us", p.max)
                .add("last_error", last_error_);
            line.print();
        }
        return exit_status(finished, total);
    }

    std::vector<Target> targets_;
    LatencyOptions options_;
    std::vector<Stats> per_target_;
    std::vector<Conn*> conns_;
    std::unordered_map<Conn*, std::size_t> index_;  // which target a session talks to
    std::vector<std::size_t> order_;                // interleaved: this cycle's order
    std::size_t position_ = 0;
    std::minstd_rand random_{20261122};  // fixed: two runs shuffle alike
    std::size_t ready_ = 0;
    bool measuring_ = false;
    std::uint64_t seq_ = 0;
    std::unordered_map<Conn*, Clock::time_point> sent_;
    Clock::time_point deadline_ = Clock::now();
};

}  // namespace

int run_latency(const std::vector<Target>& targets, const LatencyOptions& options) {
    LatencyRun run(targets, options);
    return run.run();
}

}  // namespace postern::bench
