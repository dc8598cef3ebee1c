#pragma once
// Pure helpers for DNS names as they appear in a ClientHello (RFC 6066 §3 server_name) and in
// certificates' subjectAltName. No OpenSSL here, so they can be unit-tested and fuzzed alone
// (tests/fuzz/server_name_fuzz.cpp); the host name rule itself is conf::is_dns_name.
// Names are compared ASCII-case-insensitively with one trailing dot ignored; IP literals are
// never SNI (RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted").

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace postern::tls {

// Returns the host_name entry of a server_name extension body, or nullopt when the bytes are
// malformed or hold no host_name. Never reads outside `ext`.
[[nodiscard]] std::optional<std::string_view> parse_server_name_ext(
    std::span<const std::uint8_t> ext) noexcept;

// Lower-cased name without its trailing dot, or nullopt for anything that cannot be a DNS host
// name we would serve: not a host name by conf::is_dns_name (the one rule, RFC 1123 §2.1), or
// an IPv4/IPv6 literal.
[[nodiscard]] std::optional<std::string> normalize_host_name(std::string_view name);

// Same for a certificate's DNS SAN, which may also be a wildcard "*.example.com" (a single
// leading "*" label followed by at least two labels). Wildcards come back as "*.example.com".
[[nodiscard]] std::optional<std::string> normalize_san_name(std::string_view name);

// The wildcard index key for a normalized host name: "a.example.com" -> ".example.com".
// Empty when the name has no parent that a wildcard could cover.
[[nodiscard]] std::string_view wildcard_key(std::string_view host) noexcept;

}  // namespace postern::tls
