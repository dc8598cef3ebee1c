#include "proxy/client_limits.hpp"

#include "protocols/replies.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <netinet/in.h>
#include <random>
#include <utility>

namespace postern::proxy {
namespace {

// splitmix64's finalizer: every input bit moves every output bit.
std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 30U;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27U;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31U;
    return x;
}

std::uint64_t random_seed() {
    std::random_device random;
    return (std::uint64_t{random()} << 32U) ^ random();
}

std::string suppressed_text(std::uint64_t suppressed) {
    return suppressed == 0
               ? std::string{}
               : "; " + std::to_string(suppressed) + " more refused since the last such line";
}

}  // namespace

ClientKey client_key(const sockaddr* address) noexcept {
    ClientKey key;
    if (address == nullptr) {
        return key;
    }
    if (address->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(address);
        key.family = 4;
        std::memcpy(key.bytes.data(), &in->sin_addr, 4);
    } else if (address->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {  // an IPv4 client of a dual-stack listener
            key.family = 4;
            std::memcpy(key.bytes.data(), &in6->sin6_addr.s6_addr[12], 4);
        } else {
            key.family = 6;
            std::memcpy(key.bytes.data(), in6->sin6_addr.s6_addr, 8);  // the /64
        }
    }
    return key;
}

std::vector<ClientLimits::PerClient> ClientLimits::of(const conf::Config& config) {
    std::vector<PerClient> listeners;
    listeners.reserve(config.listeners.size());
    for (const conf::ListenerSpec& spec : config.listeners) {
        listeners.push_back(
            {spec.max_sessions_per_client, spec.max_new_per_client, spec.listen.to_string()});
    }
    return listeners;
}

ClientLimits::ClientLimits(std::size_t max_sessions, std::vector<PerClient> listeners,
                           std::size_t max_clients)
    : max_sessions_(max_sessions),
      listeners_(std::move(listeners)),
      max_clients_(max_clients),
      table_(0, Hash{random_seed()}),
      throttles_(listeners_.size()) {}

bool ClientLimits::take_session() noexcept {
    std::size_t open = sessions_.load(std::memory_order_relaxed);
    do {
        if (open >= max_sessions_) {
            return false;
        }
    } while (!sessions_.compare_exchange_weak(open, open + 1, std::memory_order_relaxed));
    return true;
}

void ClientLimits::release_session() noexcept {
    sessions_.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t ClientLimits::Hash::operator()(const Key& key) const noexcept {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    std::memcpy(&high, key.client.bytes.data(), sizeof(high));
    std::memcpy(&low, key.client.bytes.data() + sizeof(high), sizeof(low));
    std::uint64_t h = mix(seed ^ ((std::uint64_t{key.listener} << 8U) | key.client.family));
    h = mix(h ^ high);
    return static_cast<std::size_t>(mix(h ^ low));
}

bool ClientLimits::idle(const Entry& entry, const PerClient& rules,
                        Clock::time_point now) const noexcept {
    return entry.sessions == 0 &&
           (rules.max_new.off() || now - entry.window >= rules.max_new.window);
}

ClientLimits::Verdict ClientLimits::admit(std::size_t listener, const ClientKey& client,
                                          Clock::time_point now) {
    const PerClient& rules = listeners_.at(listener);
    if (rules.off() || client.family == 0) {
        return {};
    }
    const Key key{client, static_cast<std::uint32_t>(listener)};
    {
        const std::lock_guard lock(mutex_);
        if (now >= next_sweep_) {
            sweep(now);
        }
        auto it = table_.find(key);
        if (it == table_.end()) {
            if (table_.size() < max_clients_) {
                it = table_.emplace(key, Entry{.sessions = 0, .fresh = 0, .window = now}).first;
            }
        }
        if (it != table_.end()) {
            Entry& entry = it->second;
            if (rules.max_sessions != 0 && entry.sessions >= rules.max_sessions) {
                return {Limit::MaxSessionsPerClient, false};
            }
            if (!rules.max_new.off()) {
                if (now - entry.window >= rules.max_new.window) {
                    entry.window = now;
                    entry.fresh = 0;
                }
                if (entry.fresh >= rules.max_new.count) {
                    return {Limit::MaxNewPerClient, false};
                }
                ++entry.fresh;
            }
            ++entry.sessions;
            return {Limit::None, true};
        }
    }
    log_full(listener, now);  // outside mutex_: admitted, untracked
    return {};
}

void ClientLimits::release(std::size_t listener, const ClientKey& client,
                           Clock::time_point now) noexcept {
    const std::lock_guard lock(mutex_);
    const auto it = table_.find(Key{client, static_cast<std::uint32_t>(listener)});
    if (it == table_.end() || it->second.sessions == 0) {
        return;
    }
    --it->second.sessions;
    if (idle(it->second, listeners_[listener], now)) {
        table_.erase(it);
    }
}

std::size_t ClientLimits::clients() const {
    const std::lock_guard lock(mutex_);
    return table_.size();
}

void ClientLimits::sweep(Clock::time_point now) {
    for (auto it = table_.begin(); it != table_.end();) {
        if (idle(it->second, listeners_[it->first.listener], now)) {
            it = table_.erase(it);
        } else {
            ++it;
        }
    }
    next_sweep_ = now + kSweepEvery;
}

bool ClientLimits::log_due(std::size_t listener, Limit limit, Clock::time_point now,
                           std::uint64_t& suppressed) {
    const std::lock_guard lock(log_mutex_);
    Throttle& t = throttles_.at(listener).at(static_cast<std::size_t>(limit));
    if (t.logged && now - t.last < kLogEvery) {
        ++t.suppressed;
        return false;
    }
    t.logged = true;
    t.last = now;
    suppressed = t.suppressed;
    t.suppressed = 0;
    return true;
}

void ClientLimits::log_refusal(std::size_t listener, Limit limit, std::string_view client,
                               Clock::time_point now) {
    std::uint64_t suppressed = 0;
    if (!log_due(listener, limit, now, suppressed)) {
        return;
    }
    const PerClient& rules = listeners_.at(listener);
    switch (limit) {
        case Limit::MaxSessions:
            spdlog::warn(
                "listener {}: refused a connection from {}: {} session(s) open in all "
                "(server.max_sessions = {}){}",
                rules.name, client, max_sessions_, max_sessions_, suppressed_text(suppressed));
            return;
        case Limit::MaxSessionsPerClient:
            spdlog::warn(
                "listener {}: refused a connection from {}: its address has {} session(s) open "
                "(max_sessions_per_client = {}){}",
                rules.name, client, rules.max_sessions, rules.max_sessions,
                suppressed_text(suppressed));
            return;
        case Limit::MaxNewPerClient:
            spdlog::warn(
                "listener {}: refused a connection from {}: its address opened {} new "
                "connection(s) "
                "in the window (max_new_per_client = \"{}\"){}",
                rules.name, client, rules.max_new.count, conf::to_string(rules.max_new),
                suppressed_text(suppressed));
            return;
        case Limit::None:
            return;
    }
}

void ClientLimits::log_full(std::size_t listener, Clock::time_point now) {
    std::uint64_t suppressed = 0;
    if (!log_due(listener, Limit::None, now, suppressed)) {
        return;
    }
    spdlog::warn(
        "listener {}: the per-client table is full ({} addresses): a new address is served "
        "without per-client limits until entries expire (server.max_sessions still "
        "applies){}",
        listeners_.at(listener).name, max_clients_,
        suppressed == 0 ? std::string{}
                        : "; " + std::to_string(suppressed) + " more since the last such line");
}

Admission::Admission(Admission&& other) noexcept
    : limits_(std::exchange(other.limits_, nullptr)),
      listener_(other.listener_),
      client_(other.client_),
      session_(std::exchange(other.session_, false)),
      tracked_(std::exchange(other.tracked_, false)) {}

Admission& Admission::operator=(Admission&& other) noexcept {
    if (this != &other) {
        release();
        limits_ = std::exchange(other.limits_, nullptr);
        listener_ = other.listener_;
        client_ = other.client_;
        session_ = std::exchange(other.session_, false);
        tracked_ = std::exchange(other.tracked_, false);
    }
    return *this;
}

Limit Admission::take_session() noexcept {
    if (limits_ == nullptr || session_) {
        return Limit::None;
    }
    session_ = limits_->take_session();
    return session_ ? Limit::None : Limit::MaxSessions;
}

Limit Admission::admit_client(const sockaddr* peer, Clock::time_point now) {
    if (limits_ == nullptr || tracked_) {
        return Limit::None;
    }
    client_ = client_key(peer);
    const ClientLimits::Verdict verdict = limits_->admit(listener_, client_, now);
    tracked_ = verdict.tracked;
    return verdict.limit;
}

void Admission::log_refusal(Limit limit, std::string_view client) const {
    if (limits_ != nullptr) {
        limits_->log_refusal(listener_, limit, client);
    }
}

void Admission::release() noexcept {
    if (limits_ == nullptr) {
        return;
    }
    if (tracked_) {
        limits_->release(listener_, client_);
        tracked_ = false;
    }
    if (session_) {
        limits_->release_session();
        session_ = false;
    }
}

std::string refusal_reply(conf::Protocol protocol, conf::TlsMode mode, Limit limit,
                          std::string_view hostname) {
    if (mode == conf::TlsMode::Implicit) {
        return {};  // closed before the handshake: no byte, no crypto
    }
    const protocols::replies::LimitReplies& replies = protocols::replies::limits_of(protocol);
    switch (limit) {
        case Limit::MaxSessions:
            return replies.sessions.text(hostname);
        case Limit::MaxSessionsPerClient:
            return replies.client_sessions.text(hostname);
        case Limit::MaxNewPerClient:
            return replies.client_rate.text(hostname);
        case Limit::None:
            break;
    }
    return {};
}

std::string_view to_string(Limit limit) noexcept {
    switch (limit) {
        case Limit::None:
            return "none";
        case Limit::MaxSessions:
            return "max_sessions";
        case Limit::MaxSessionsPerClient:
            return "max_sessions_per_client";
        case Limit::MaxNewPerClient:
            return "max_new_per_client";
    }
    return "none";
}

}  // namespace postern::proxy
