#pragma once
// IPv4 and IPv6 addresses as text, both ways, without <arpa/inet.h> (protocols/ does no
// system calls, and the PROXY protocol wants the prefix checks inet_pton has no form for).
// Parsing follows inet_pton's grammar: dotted quads of 0..255 without heading zeroes; IPv6 as
// up to eight groups of 1-4 hex digits, at most one "::", and an optional dotted-quad tail.
// Formatting follows RFC 5952. Invariant: formatting an address and parsing the text back
// gives the same bytes.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::protocols::ip_text {

using Ipv4 = std::array<std::uint8_t, 4>;
using Ipv6 = std::array<std::uint8_t, 16>;

// Longest text parse_ipv6 accepts: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
inline constexpr std::size_t kMaxIpv6Text = 45;

[[nodiscard]] std::optional<Ipv4> parse_ipv4(std::string_view text) noexcept;
[[nodiscard]] std::optional<Ipv6> parse_ipv6(std::string_view text) noexcept;

// Could more characters appended to `text` make it an address parse_ipv4/parse_ipv6 accepts?
// The IPv4 answer is exact; the IPv6 one only checks characters and length.
[[nodiscard]] bool could_be_ipv4(std::string_view text) noexcept;
[[nodiscard]] bool could_be_ipv6(std::string_view text) noexcept;

[[nodiscard]] std::string format_ipv4(const Ipv4& address);
// RFC 5952 §4: lower case, no heading zeroes, the longest run of two or more zero groups (the
// first of equals) as "::"; §5: IPv4-mapped addresses as "::ffff:192.0.2.1".
[[nodiscard]] std::string format_ipv6(const Ipv6& address);

}  // namespace postern::protocols::ip_text
