#include "tests/bench/scenario.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace postern::bench {
namespace {

constexpr timeval kTick{0, 100'000};

}  // namespace

Scenario::Scenario(const Target& target, double hard_limit_seconds)
    : target_(target),
      base_(event_base_new()),
      hard_limit_(Clock::now() + from_seconds(hard_limit_seconds)) {
    tick_.reset(event_new(base_.get(), -1, EV_PERSIST, &tick_cb, this));
    event_add(tick_.get(), &kTick);
}

Scenario::~Scenario() {
    for (auto& [conn, owned] : live_) {
        owned->close();
    }
}

Conn* Scenario::open(SSL_SESSION* resume, const Target* to) {
    auto conn = std::make_unique<Conn>(base_.get(), to != nullptr ? *to : target_, *this, resume);
    Conn* raw = conn.get();
    if (!conn->start()) {
        note_error(conn->error());
        graveyard_.push_back(std::move(conn));
        return nullptr;
    }
    live_.emplace(raw, std::move(conn));
    return raw;
}

void Scenario::retire(Conn& conn) {
    conn.close();
    const auto it = live_.find(&conn);
    if (it != live_.end()) {
        graveyard_.push_back(std::move(it->second));
        live_.erase(it);
    }
}

void Scenario::tick() noexcept {
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

Turns::Turns(std::size_t targets, double seconds, double slice) : order_(targets) {
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    const double length = targets > 1 ? std::min(slice, seconds) : seconds;
    slice_ = from_seconds(length);
    cycles_ = static_cast<std::size_t>(std::max(1.0, std::round(seconds / length)));
    std::shuffle(order_.begin(), order_.end(), random_);
}

bool Turns::next() {
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

}  // namespace postern::bench
