#pragma once
// The connection limits every listener and worker share: server.max_sessions, one count for
// the whole process, and each listener's max_sessions_per_client and max_new_per_client,
// counted per client address (an IPv6 client by its /64: one host commonly holds a whole /64,
// as nginx and Postfix users key IPv6 clients). run() builds one ClientLimits before the
// workers, which outlive none of it. Accept time is not the relay's hot path: the total is an
// atomic, the per-client table one map under a mutex.
//
// A client address is counted on a listener from its first admitted connection while it has
// sessions there or its rate window runs (anvil's fixed window: counted from the first new
// connection after the previous window ended); an entry with neither is dropped when its last
// session ends or by a sweep, at most once a second. The table holds at most `max_clients`
// entries (kMaxClients): when it is full a new address is admitted untracked, which is logged,
// so an address spray costs bounded memory and cannot lock out addresses the table does not
// know, while max_sessions still bounds the whole.
//
// Refusals are logged at most once a second per listener and limit, with the count of those
// not logged since. An Admission is what one connection holds; it releases on destruction.

#include "conf/config.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unordered_map>
#include <vector>

namespace postern::proxy {

// Which limit refused a connection; None: admitted.
enum class Limit : std::uint8_t { None, MaxSessions, MaxSessionsPerClient, MaxNewPerClient };

// A client address as the per-client limits count it: IPv4 (an IPv4-mapped IPv6 address as the
// IPv4 address it carries) whole, IPv6 by its first 64 bits. family 0: not an IP address
// (never limited per client).
struct ClientKey {
    std::array<std::uint8_t, 16> bytes{};
    std::uint8_t family = 0;  // 4 | 6 | 0
    friend bool operator==(const ClientKey&, const ClientKey&) = default;
};
[[nodiscard]] ClientKey client_key(const sockaddr* address) noexcept;

class ClientLimits {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::size_t kMaxClients = 100'000;
    static constexpr Clock::duration kSweepEvery = std::chrono::seconds{1};
    static constexpr Clock::duration kLogEvery = std::chrono::seconds{1};

    // One listener's per-client limits (0 and "off": none) and its name for the log.
    struct PerClient {
        std::uint32_t max_sessions = 0;
        conf::Rate max_new;
        std::string name;
        [[nodiscard]] bool off() const noexcept { return max_sessions == 0 && max_new.off(); }
    };
    [[nodiscard]] static std::vector<PerClient> of(const conf::Config& config);

    // `max_sessions`: for the whole process; `listeners` indexed as ListenerContext::index.
    ClientLimits(std::size_t max_sessions, std::vector<PerClient> listeners,
                 std::size_t max_clients = kMaxClients);

    // max_sessions: true when counted, false when that many sessions are open already.
    [[nodiscard]] bool take_session() noexcept;
    void release_session() noexcept;
    [[nodiscard]] std::size_t sessions() const noexcept {
        return sessions_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::size_t max_sessions() const noexcept { return max_sessions_; }

    // The client's limits on `listener`. Admitted (Limit::None) counts it: `tracked` says
    // whether release() must be called (false: no per-client limit, not an IP address, or the
    // table was full).
    struct Verdict {
        Limit limit = Limit::None;
        bool tracked = false;
    };
    [[nodiscard]] Verdict admit(std::size_t listener, const ClientKey& client,
                                Clock::time_point now = Clock::now());
    void release(std::size_t listener, const ClientKey& client,
                 Clock::time_point now = Clock::now()) noexcept;
    [[nodiscard]] std::size_t clients() const;  // entries in the table

    // Logs (warn) that `client` was refused by `limit` on `listener`, unless a line for that
    // listener and limit was logged less than kLogEvery ago; the next line says how many were
    // not logged.
    void log_refusal(std::size_t listener, Limit limit, std::string_view client,
                     Clock::time_point now = Clock::now());

    // Whether a line is due for `listener` and `limit` at `now`; if so `suppressed` is set to
    // the refusals not logged since the last line (the throttle behind log_refusal).
    [[nodiscard]] bool log_due(std::size_t listener, Limit limit, Clock::time_point now,
                               std::uint64_t& suppressed);

private:
    struct Key {
        ClientKey client;
        std::uint32_t listener = 0;
        friend bool operator==(const Key&, const Key&) = default;
    };
    // Keyed with a random seed: addresses cannot be chosen to fall into one bucket.
    struct Hash {
        std::uint64_t seed = 0;
        [[nodiscard]] std::size_t operator()(const Key& key) const noexcept;
    };
    struct Entry {
        std::uint32_t sessions = 0;
        std::uint32_t fresh = 0;  // new connections admitted in the window
        Clock::time_point window{};
    };
    struct Throttle {
        Clock::time_point last{};
        bool logged = false;
        std::uint64_t suppressed = 0;
    };
    [[nodiscard]] bool idle(const Entry& entry, const PerClient& rules,
                            Clock::time_point now) const noexcept;
    void sweep(Clock::time_point now);  // with mutex_ held
    void log_full(std::size_t listener, Clock::time_point now);

    const std::size_t max_sessions_;
    const std::vector<PerClient> listeners_;
    const std::size_t max_clients_;
    std::atomic<std::size_t> sessions_{0};
    mutable std::mutex mutex_;
    std::unordered_map<Key, Entry, Hash> table_;  // guarded by mutex_
    Clock::time_point next_sweep_{};              // guarded by mutex_
    std::mutex log_mutex_;
    // Per listener: one per limit (Limit's values 1-3) and, at 0, "the table is full".
    std::vector<std::array<Throttle, 4>> throttles_;  // guarded by log_mutex_
};

// What one connection holds of the limits: its place in max_sessions, taken at accept, and
// its client's on the listener, taken once the client's address is final (at accept, or from
// a trusted balancer's PROXY header). Released when the connection ends, or on destruction
// (a socket dropped on its way to a worker). Move-only; empty when default-constructed.
class Admission {
public:
    using Clock = ClientLimits::Clock;

    Admission() = default;
    Admission(ClientLimits& limits, std::size_t listener) noexcept
        : limits_(&limits), listener_(listener) {}
    Admission(Admission&& other) noexcept;
    Admission& operator=(Admission&& other) noexcept;
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;
    ~Admission() { release(); }

    // Limit::None when counted in max_sessions, else Limit::MaxSessions.
    [[nodiscard]] Limit take_session() noexcept;
    // The client's limits (after take_session); the refusing limit, or Limit::None.
    [[nodiscard]] Limit admit_client(const sockaddr* peer, Clock::time_point now = Clock::now());
    // Logs this refusal (rate-limited, ClientLimits::log_refusal).
    void log_refusal(Limit limit, std::string_view client) const;
    void release() noexcept;

private:
    ClientLimits* limits_ = nullptr;
    std::size_t listener_ = 0;
    ClientKey client_;
    bool session_ = false;  // counted in max_sessions
    bool tracked_ = false;  // counted in the client table
};

// What a STARTTLS listener says before closing a connection refused by `limit`
// (protocols/replies.hpp); empty on implicit-TLS listeners, which close without a byte.
[[nodiscard]] std::string refusal_reply(conf::Protocol protocol, conf::TlsMode mode, Limit limit,
                                        std::string_view hostname);

// "max_sessions_per_client", as the key is named in the config.
[[nodiscard]] std::string_view to_string(Limit limit) noexcept;

}  // namespace postern::proxy
