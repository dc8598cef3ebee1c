// The throughput scenario: bulk payload from the backend through 1..N logged-in sessions, MB/s.

#include "tests/bench/report.hpp"
#include "tests/bench/scenario.hpp"
#include "tests/bench/scenarios.hpp"

#include <string_view>
#include <unordered_map>
#include <vector>

namespace postern::bench {
namespace {

// One target: every session keeps `depth` requests in flight for the whole run. Several targets
// (proxies side by side): each one's sessions are loaded in turn, one slice at a time, in a new
// random order every cycle; a slice ends when its last reply has arrived, so each target's
// figure is its bytes over the time it alone was loaded, and a slow moment of the machine is
// shared out among the targets instead of falling on one.
class ThroughputRun final : public Scenario {
public:
    ThroughputRun(const std::vector<Target>& targets, const ThroughputOptions& options)
        : Scenario(targets.front(), (options.seconds * static_cast<double>(targets.size())) + 90),
          targets_(targets),
          options_(options),
          per_target_(targets.size()),
          turns_(targets.size(), options.seconds, options.slice) {}

    int run() {
        for (std::size_t t = 0; t < targets_.size(); ++t) {
            for (std::size_t i = 0; i < options_.sessions; ++i) {
                Conn* conn = open(nullptr, &targets_[t]);
                if (conn == nullptr) {
                    return report(true);
                }
                index_[conn] = t;
                per_target_[t].conns.push_back(conn);
            }
        }
        const bool finished = loop();
        return report(finished);
    }

    void on_ready(Conn& /*conn*/) override {
        if (++ready_ < targets_.size() * options_.sessions) {
            return;
        }
        measuring_ = true;
        start_slice();
    }

    void on_reply(Conn& conn, std::uint64_t payload) override {
        Load& load = per_target_[index_[&conn]];
        load.bytes += payload;
        ++load.replies;
        --load.pending;
        if (Clock::now() < slice_end_ && load.requested < options_.max_bytes) {
            issue(conn, load);
        } else if (load.pending == 0) {
            end_slice();
        }
    }

    void on_failed(Conn& conn, std::string_view why) override {
        note_error(why);
        retire(conn);
        stop();  // a broken session: the figures would no longer compare like with like
    }

private:
    struct Load {
        std::vector<Conn*> conns;
        std::uint64_t requested = 0;
        std::uint64_t bytes = 0;
        std::uint64_t replies = 0;
        std::size_t pending = 0;
        double seconds = 0;  // time this target was loaded
    };

    void start_slice() {
        Load& load = per_target_[turns_.current()];
        slice_start_ = Clock::now();
        slice_end_ = slice_start_ + turns_.slice();
        for (Conn* c : load.conns) {
            for (std::size_t i = 0; i < options_.depth; ++i) {
                issue(*c, load);
            }
        }
    }

    void end_slice() {
        per_target_[turns_.current()].seconds += seconds_between(slice_start_, Clock::now());
        if (!turns_.next()) {
            stop();
            return;
        }
        start_slice();
    }

    void issue(Conn& conn, Load& load) {
        const auto request = bulk_request(target().protocol, ++seq_, options_.chunk);
        if (!request) {
            note_error("no bulk command in this protocol");
            stop();
            return;
        }
        load.requested += options_.chunk;
        ++load.pending;
        conn.request(*request);
    }

    int report(bool finished) {
        std::uint64_t total = 0;
        for (std::size_t t = 0; t < targets_.size(); ++t) {
            const Load& load = per_target_[t];
            total += load.bytes;
            JsonLine line;
            line.add("scenario", "throughput")
                .add("connect", targets_[t].name)
                .add("sessions", static_cast<std::uint64_t>(options_.sessions))
                .add("bytes", load.bytes)
                .add("replies", load.replies)
                .add("errors", errors_)
                .add("seconds", load.seconds)
                .add("mb_per_s",
                     load.seconds > 0 ? static_cast<double>(load.bytes) / 1e6 / load.seconds : 0.0)
                .add("last_error", last_error_);
            line.print();
        }
        return exit_status(finished, total);
    }

    std::vector<Target> targets_;
    ThroughputOptions options_;
    std::vector<Load> per_target_;
    std::unordered_map<Conn*, std::size_t> index_;  // which target a session talks to
    Turns turns_;
    std::size_t ready_ = 0;
    bool measuring_ = false;
    std::uint64_t seq_ = 0;
    Clock::time_point slice_start_ = Clock::now();
    Clock::time_point slice_end_ = slice_start_;
};

}  // namespace

int run_throughput(const std::vector<Target>& targets, const ThroughputOptions& options) {
    ThroughputRun run(targets, options);
    return run.run();
}

}  // namespace postern::bench
