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

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
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

// One listener on one worker.
struct ListenerCounters {
    Counter sessions_started;
    std::array<Counter, kCloseReasons> sessions_ended;  // by CloseReason
    std::array<std::array<Counter, kTlsVersionLabels.size()>, kHandshakeResults> handshakes;
    Counter resumed_handshakes;
    Counter starttls;
    Counter starttls_discarded_bytes;

    void session_ended(protocols::CloseReason reason) noexcept {
        sessions_ended.at(static_cast<std::size_t>(reason)).add();
    }
    void handshake(HandshakeResult result, std::size_t version) noexcept {
        handshakes.at(static_cast<std::size_t>(result)).at(version).add();
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
};

// `per_worker`: the same listener's counters in each worker.
[[nodiscard]] ListenerTotals sum_listener(std::string name,
                                          const std::vector<const ListenerCounters*>& per_worker);

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
