#include "tests/bench/scenarios.hpp"

#include "tests/bench/report.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace postern::bench {
namespace {

using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// A run with this many failed connections is broken; it stops instead of hammering on.
constexpr std::uint64_t kMaxErrors = 50;
constexpr timeval kTick{0, 100'000};

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return duration<double>(b - a).count();
}

double micros(Clock::duration d) {
    return duration<double, std::micro>(d).count();
}

Clock::duration from_seconds(double s) {
    return duration_cast<Clock::duration>(duration<double>(s));
}

// What every scenario shares: the event loop, a 100 ms tick that fails overdue connections and
// frees retired ones (never inside their own callbacks), and a hard time limit.
class Scenario : public ConnOwner {
public:
    Scenario(const Target& target, double hard_limit_seconds)
        : target_(target),
          base_(event_base_new()),
          hard_limit_(Clock::now() + from_seconds(hard_limit_seconds)) {
        tick_.reset(event_new(base_.get(), -1, EV_PERSIST, &tick_cb, this));
        event_add(tick_.get(), &kTick);
    }
    Scenario(const Scenario&) = delete;
    Scenario& operator=(const Scenario&) = delete;
    Scenario(Scenario&&) = delete;
    Scenario& operator=(Scenario&&) = delete;
    virtual ~Scenario() {
        for (auto& [conn, owned] : live_) {
            owned->close();
        }
    }

    // Runs until stop(); false when the hard limit ended it.
    bool loop() {
        event_base_dispatch(base_.get());
        return !timed_out_;
    }

    void on_reply(Conn& /*conn*/, std::uint64_t /*payload*/) override {}

protected:
    // A new connection, started; nullptr (with the error counted) when it failed at once.
    Conn* open(SSL_SESSION* resume, const Target* to = nullptr) {
        auto conn =
            std::make_unique<Conn>(base_.get(), to != nullptr ? *to : target_, *this, resume);
        Conn* raw = conn.get();
        if (!conn->start()) {
            note_error(conn->error());
            graveyard_.push_back(std::move(conn));
            return nullptr;
        }
        live_.emplace(raw, std::move(conn));
        return raw;
    }

    // Closes a connection; it is freed on the next tick.
    void retire(Conn& conn) {
        conn.close();
        const auto it = live_.find(&conn);
        if (it != live_.end()) {
            graveyard_.push_back(std::move(it->second));
            live_.erase(it);
        }
    }

    void note_error(std::string_view why) {
        ++errors_;
        last_error_.assign(why.substr(0, 300));
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

    void tick() noexcept {
        graveyard_.clear();
        const Clock::time_point now = Clock::now();
        if (now >= hard_limit_) {
            timed_out_ = true;
            stop();
            return;
        }
        try {
            std::vector<Conn*> overdue;
            for (auto& [conn, owned] : live_) {
                if (conn->open() && conn->deadline() <= now) {
                    overdue.push_back(conn);
                }
            }
            for (Conn* c : overdue) {
                if (live_.contains(c)) {
                    c->time_out();
                }
            }
        } catch (...) {
            timed_out_ = true;
            stop();
        }
    }

    const Target& target_;
    EventBasePtr base_;
    EventPtr tick_;
    Clock::time_point hard_limit_;
    bool timed_out_ = false;
    std::unordered_map<Conn*, std::unique_ptr<Conn>> live_;
    std::vector<std::unique_ptr<Conn>> graveyard_;
};

// ---------------------------------------------------------------------------------------------

// Whose turn it is when several targets are loaded one slice at a time: every target once per
// cycle, in a new random order each cycle (a fixed seed, so two runs shuffle alike). One target
// gets a single slice of the whole run.
class Turns {
public:
    Turns(std::size_t targets, double seconds, double slice) : order_(targets) {
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        const double length = targets > 1 ? std::min(slice, seconds) : seconds;
        slice_ = from_seconds(length);
        cycles_ = static_cast<std::size_t>(std::max(1.0, std::round(seconds / length)));
        std::shuffle(order_.begin(), order_.end(), random_);
    }

    [[nodiscard]] std::size_t current() const noexcept { return order_[position_]; }
    [[nodiscard]] Clock::duration slice() const noexcept { return slice_; }

    // The next target's turn; false once every cycle is done.
    bool next() {
        if (++position_ < order_.size()) {
            return true;
        }
        position_ = 0;
        if (++cycle_ == cycles_) {
            return false;
        }
        std::shuffle(order_.begin(), order_.end(), random_);
        return true;
    }

private:
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    std::size_t cycle_ = 0;
    std::size_t cycles_ = 1;
    Clock::duration slice_{};
    std::minstd_rand random_{20261122};
};

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

// ---------------------------------------------------------------------------------------------

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
        if (!finished) {
            return 2;
        }
        return total > 0 && errors_ == 0 ? 0 : 1;
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

// ---------------------------------------------------------------------------------------------

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
        if (!finished) {
            return 2;
        }
        return total > 0 && errors_ == 0 ? 0 : 1;
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

// ---------------------------------------------------------------------------------------------

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

int run_handshake(const std::vector<Target>& targets, const std::vector<SessionStore*>& stores,
                  const HandshakeOptions& options) {
    HandshakeRun run(targets, stores, options);
    return run.run();
}

int run_throughput(const std::vector<Target>& targets, const ThroughputOptions& options) {
    ThroughputRun run(targets, options);
    return run.run();
}

int run_latency(const std::vector<Target>& targets, const LatencyOptions& options) {
    LatencyRun run(targets, options);
    return run.run();
}

int run_idle(const Target& target, const IdleOptions& options) {
    IdleRun run(target, options);
    return run.run();
}

}  // namespace postern::bench
