#pragma once
// The config values TOML has no type for: endpoints ("host:port", "[v6]:port"), durations
// ("250ms", "30s", "5m", "1h"), rates ("30/10s") and DNS names. Pure functions on strings, no I/O
// and no toml++, so the loader, the unit tests and a fuzz target share one grammar. An error comes
// back as a whole message that quotes the input and says what would be accepted; the loader only
// puts "file:line:col: key: " in front of it. Fuzzed by tests/fuzz/parse_value_fuzz.cpp.

#include "conf/config.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::conf {

// A parse outcome: `value` is set exactly when `error` is empty.
template <class T>
struct Parsed {
    std::optional<T> value;
    std::string error;
};

// Longest accepted duration. Keeps `steady_clock::now() + timeout` (nanoseconds in an int64)
// far from overflow, and no mail session timeout needs more.
inline constexpr std::chrono::hours kMaxDuration{24 * 365};

// "host:port" or "[v6]:port"; the host is stored without brackets and otherwise as written.
// Refuses an empty host, a missing, non-numeric, 0 or > 65535 port, unbalanced brackets, an
// IPv6 address without brackets, brackets around anything but an IPv6 address, and host
// characters other than letters, digits, '.', '-' and '_' (a '%zone' is allowed in brackets).
[[nodiscard]] Parsed<Endpoint> parse_endpoint(std::string_view text);

// Whether a duration of 0 means something (a key that can switch a wait off) or is refused.
enum class Zero : bool { Refused, Allowed };

// A whole number directly followed by one unit: ms, s, m or h ("250ms", "30s", "5m", "1h").
// Refuses no unit, other units, signs, fractions, spaces, anything above kMaxDuration, and 0
// unless `zero` allows it.
[[nodiscard]] Parsed<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                               Zero zero = Zero::Refused);

// A connection rate: "off", or a count from 1 to kMaxPerClient, '/', and a window from
// kMinRateWindow to kMaxRateWindow written as a duration ("30/10s", "100/1m") or a bare unit
// meaning one of it ("10/s", "100/m"). "off" gives Rate{} (count 0).
[[nodiscard]] Parsed<Rate> parse_rate(std::string_view text);

// A TOML integer duration, in seconds; same limits as parse_duration.
[[nodiscard]] Parsed<std::chrono::milliseconds> duration_from_seconds(std::int64_t seconds,
                                                                      Zero zero = Zero::Refused);

// A host name: dot-separated labels of ASCII letters, digits and inner hyphens, each 1-63
// bytes, 253 bytes at most in all. The one rule for every DNS name postern reads (config
// hostnames, tls.default_certificate, SNI and certificates' DNS SANs through
// tls/server_name.hpp): RFC 1123 §2.1 (RFC 1034 §3.5's preferred syntax, a label may start
// with a digit), which RFC 6066 §3 (SNI HostName) and RFC 6125 §6.4 (DNS-IDs) refer to. No '_'
// (service labels, RFC 8552, never name a host), no wildcard, no trailing dot.
[[nodiscard]] bool is_dns_name(std::string_view name) noexcept;

// An IPv4 or IPv6 address, or a network in CIDR notation ("10.0.0.0/8", "2001:db8::/32"). A
// bare address is a /32 or /128. Refuses host bits set under the prefix ("10.0.0.1/8" is
// almost always a typo for a single address or a different network), prefixes out of range,
// names and brackets.
[[nodiscard]] Parsed<Network> parse_network(std::string_view text);

// A listener route's server name as it is matched against SNI: lower case, a trailing dot
// dropped, then a DNS name or "*." followed by one. nullopt for anything else.
[[nodiscard]] std::optional<std::string> route_name(std::string_view text);

}  // namespace postern::conf
