#pragma once
// The counters behind GET /metrics (proxy/metrics_endpoint.hpp) and their text rendering.
// Each worker owns its listeners' ListenerCounters and is their only writer, on its own
// thread: a Counter is a relaxed atomic bumped by a plain load and store (no locked
// read-modify-write, no lock), so the hot path costs what a plain field would. The scrape, on
// the main thread, reads every worker's counters and sums them (sum_listener()); a sum may mix
// values a few increments apart, which Prometheus counters tolerate.
//
// render() turns a Scrape (plain numbers, no live object) into the Prometheus text format
// 0.0.4: every family with # HELP and # TYPE, label values escaped.

#include "protocols/action.hpp"
#include "proxy/client_limits.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::proxy {

class Counter {
public:
    // The owning worker's thread only.
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    // Any thread.
    [[nodiscard]] std::uint64_t get() const noexcept {
        return value_.load(std::memory_order_relaxed);
    }

private:
    std::atomic<std::uint64_t> value_{0};
};

inline constexpr std::size_t kCloseReasons =
    static_cast<std::size_t>(protocols::CloseReason::Internal) + 1;

enum class HandshakeResult : std::uint8_t { Ok, Failed, Timeout };
inline constexpr std::size_t kHandshakeResults = 3;
[[nodiscard]] std::string_view to_string(HandshakeResult result) noexcept;

// The protocol versions a handshake is counted under: what OpenSSL negotiated, or "unknown"
// when it failed before choosing one.
inline constexpr std::array<std::string_view, 5> kTlsVersionLabels{"TLSv1", "TLSv1.1", "TLSv1.2",
                                                                   "TLSv1.3", "unknown"};
// Index into kTlsVersionLabels of SSL_version()'s value.
[[nodiscard]] std::size_t tls_version_index(int version) noexcept;

// Handshakes by the certificate served, on one listener of one worker. The names are those of
// loaded certificates (never client text), so the map stays as small as the certificate set
// (it keeps names a reload dropped). Only the owning worker adds; it finds without a lock, and
// inserts a name it has not counted before under the mutex the scrape's copy takes.
class ServedCounters {
public:
    // The owning worker's thread only.
    void add(std::string_view certificate);
    // Any thread: adds this one's counts into `totals`.
    void sum_into(std::map<std::string, std::uint64_t, std::less<>>& totals) const;

private:
    std::map<std::string, Counter, std::less<>> counters_;
    mutable std::mutex insert_mutex_;
};

// The Limit a connection was refused by, as an index into ListenerCounters::limit_rejected.
inline constexpr std::array<Limit, 3> kCountedLimits{
    Limit::MaxSessions, Limit::MaxSessionsPerClient, Limit::MaxNewPerClient};

// One listener on one worker.
struct ListenerCounters {
    Counter sessions_started;
    std::array<Counter, kCloseReasons> sessions_ended;  // by CloseReason
    std::array<std::array<Counter, kTlsVersionLabels.size()>, kHandshakeResults> handshakes;
    Counter resumed_handshakes;
    Counter starttls;
    Counter starttls_discarded_bytes;
    Counter sni_rejected;  // strict_sni refused the name the client sent
    ServedCounters served;
    std::array<Counter, kCountedLimits.size()> limit_rejected;  // by kCountedLimits

    void session_ended(protocols::CloseReason reason) noexcept {
        sessions_ended.at(static_cast<std::size_t>(reason)).add();
    }
    void handshake(HandshakeResult result, std::size_t version) noexcept {
        handshakes.at(static_cast<std::size_t>(result)).at(version).add();
    }
    void rejected(Limit limit) noexcept {
        for (std::size_t i = 0; i < kCountedLimits.size(); ++i) {
            if (kCountedLimits.at(i) == limit) {
                limit_rejected.at(i).add();
            }
        }
    }
};

// A listener's counters summed over the workers.
struct ListenerTotals {
    std::string name;  // the listen address as configured
    std::uint64_t sessions_active = 0;
    std::array<std::uint64_t, kCloseReasons> sessions_ended{};
    std::array<std::array<std::uint64_t, kTlsVersionLabels.size()>, kHandshakeResults> handshakes{};
    std::uint64_t resumed_handshakes = 0;
    std::uint64_t starttls = 0;
    std::uint64_t starttls_discarded_bytes = 0;
    std::uint64_t sni_rejected = 0;
    std::array<std::uint64_t, kCountedLimits.size()> limit_rejected{};
};

// `per_worker`: the same listener's counters in each worker. Its served certificates are
// added into `served`, which sums them over every listener.
[[nodiscard]] ListenerTotals sum_listener(
    std::string name, const std::vector<const ListenerCounters*>& per_worker,
    std::map<std::string, std::uint64_t, std::less<>>& served);

struct CertificateGauge {
    std::string name;  // the certificate's first name
    std::string file;
    std::string key_type;  // "ecdsa", "rsa", "other"
    std::int64_t not_after = 0;
};

struct ProcessStats {
    double cpu_seconds = 0;
    std::uint64_t resident_bytes = 0;
    std::optional<std::uint64_t> open_fds;  // unknown: left out
    double start_time = 0;                  // Unix time
};

struct BackendFailures {
    std::string backend;
    std::string address;  // as configured
    std::uint64_t failures = 0;
};

// Everything one scrape reports.
struct Scrape {
    std::vector<ListenerTotals> listeners;
    // Handshakes by the served certificate's first name; "default" for a client that named
    // no certificate postern holds (or none) and got the default one.
    std::map<std::string, std::uint64_t, std::less<>> served;
    std::vector<CertificateGauge> certificates;
    std::vector<BackendFailures> backends;
    std::uint64_t reloads_succeeded = 0;
    std::uint64_t reloads_failed = 0;
    std::int64_t last_reload_success = 0;  // Unix time; the startup load counts
    std::string version;
    std::string openssl;
    ProcessStats process;
};

[[nodiscard]] std::string render(const Scrape& scrape);

// A label value as the text format wants it: backslash, double quote and line feed escaped.
[[nodiscard]] std::string escape_label_value(std::string_view value);

}  // namespace postern::proxy
