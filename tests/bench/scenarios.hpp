#pragma once
// The generator's four scenarios (tests/bench/README.md says what each measures). One runs per
// process; each is bounded in count and in time, and prints one JSON line at the end (idle also
// prints one when its sessions are open, then holds them until stdin closes).
//   handshake   new connections per second to a ready session (greeting read), full or resumed
//   throughput  bulk payload from the backend through 1..N logged-in sessions, MB/s
//   latency     NOOP round trips through logged-in sessions, percentiles in microseconds
//   idle        N sessions opened and then held silent, for the caller to measure the proxy

#include "tests/bench/conn.hpp"
#include "tests/bench/tls_client.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace postern::bench {

struct HandshakeOptions {
    std::size_t concurrency = 32;
    std::uint64_t count = 1'000'000;
    double seconds = 5;   // per target
    double slice = 0.5;   // several targets: each is loaded this long at a time
    bool resume = false;  // offer the newest ticket; one priming connection is not counted
};

struct ThroughputOptions {
    std::size_t sessions = 1;
    std::uint64_t chunk = 1 << 20;  // payload bytes per XBULK request
    std::size_t depth = 2;          // requests in flight per session
    double seconds = 5;             // per target
    double slice = 0.5;             // several targets: each is loaded this long at a time
    std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max();
};

struct LatencyOptions {
    std::size_t sessions = 1;      // each with one NOOP in flight (one target only)
    std::uint64_t count = 20'000;  // round trips measured, per target
    std::uint64_t warmup = 200;    // round trips not counted, per target
    double seconds = 5;
};

struct IdleOptions {
    std::size_t sessions = 8000;
    std::size_t concurrency = 64;  // sessions being opened at once
    double hold_seconds = 120;     // at most; closing stdin ends the hold earlier
};

// Each prints its JSON line(s) and returns the exit status: 0 when the run produced numbers,
// 1 when it did not, 2 when it hit its time limit. Handshake, throughput and latency take their
// targets in order: --connect, then --also (and --direct); with more than one they are
// measured interleaved and each gets its own JSON line (with "connect"). `stores`: one per
// target, for resumption (null entries otherwise).
int run_handshake(const std::vector<Target>& targets, const std::vector<SessionStore*>& stores,
                  const HandshakeOptions& options);
int run_throughput(const std::vector<Target>& targets, const ThroughputOptions& options);
int run_latency(const std::vector<Target>& targets, const LatencyOptions& options);
int run_idle(const Target& target, const IdleOptions& options);

}  // namespace postern::bench
