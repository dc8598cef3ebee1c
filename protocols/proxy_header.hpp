#pragma once
// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): what one TCP
// connection's header says, the two builders postern uses towards backends, and an incremental
// parser for headers load balancers put in front of client connections. Pure: no sockets, no
// I/O, no clock.
//
// Parser invariants: it looks only at `data`; on Done, `consumed` is the header's size and the
// bytes after it (the mail protocol) are never read; NeedMore is only answered below
// kMaxV1Length (v1) or kMaxV2Length (v2) bytes received, so a caller that buffers until a
// verdict never holds more than kMaxV2Length bytes; more bytes never contradict the verdict for
// a prefix (Invalid stays Invalid, Done keeps its length and header). `out` is written only on
// Done.
//
// Strictness follows what HAProxy and Dovecot accept, and no more: v1 wants single spaces,
// decimal ports without heading zeroes (spec §2.1) and addresses of the announced family
// (inet_pton's syntax, IPv4 tails in IPv6 included); v2 wants version 2, a LOCAL or PROXY
// command, TCP over IPv4 or IPv6 (UDP and AF_UNIX refused: postern relays TCP mail sessions),
// and TLVs that stay inside the announced length. Where the spec asks for more, it wins: the
// rest of a "PROXY UNKNOWN" line is ignored if printable (Dovecot reads it, HAProxy refuses
// it), and unassigned v2 family or transport values are refused even under LOCAL.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::protocols::proxy_header {

// An IP address in network byte order, family 4 or 6 (0: none). Family 4 uses bytes[0..3].
struct Address {
    std::uint8_t family = 0;
    std::array<std::uint8_t, 16> bytes{};
    std::uint16_t port = 0;
    friend bool operator==(const Address&, const Address&) = default;
};

// "203.0.113.7", "2001:db8::1" (RFC 5952: lower case, longest zero run compressed, IPv4-mapped
// addresses as "::ffff:192.0.2.1"); no port, no brackets; "" for family 0.
[[nodiscard]] std::string to_string(const Address& address);

struct TlsInfo {
    std::string version;  // "TLSv1.3"
    std::string cipher;   // "TLS_AES_256_GCM_SHA384"
    friend bool operator==(const TlsInfo&, const TlsInfo&) = default;
};

struct Header {
    // v2 LOCAL, v2 PROXY with AF_UNSPEC, or v1 UNKNOWN: no addresses (a health check, or a
    // family the sender could not express); use the connection's own. Nothing else is set.
    bool local = false;
    Address source;              // the client
    Address destination;         // the address the client connected to
    std::string authority;       // PP2_TYPE_AUTHORITY (SNI); empty: none
    std::optional<TlsInfo> tls;  // PP2_TYPE_SSL with PP2_CLIENT_SSL set
    friend bool operator==(const Header&, const Header&) = default;
};

// "PROXY TCP4 a b p q\r\n" or TCP6; "PROXY UNKNOWN\r\n" when local, when a family is unset, or
// when source and destination families differ (v1 has no mixed form). v1 carries no TLVs.
[[nodiscard]] std::string build_v1(const Header& header);

// Binary v2. Local: LOCAL, AF_UNSPEC, no address and no TLV (a health check has no client).
// Otherwise PROXY over TCP4, or TCP6 when either side is IPv6 (an IPv4 side is then sent as
// ::ffff:a.b.c.d); AF_UNSPEC without TLVs when a family is unset. TLVs, in this order:
// PP2_TYPE_AUTHORITY when `authority` is a valid host name (see is_authority), and PP2_TYPE_SSL
// when `tls` is set (client PP2_CLIENT_SSL, verify 0, sub-TLVs PP2_SUBTYPE_SSL_VERSION and
// PP2_SUBTYPE_SSL_CIPHER for the strings that are valid TLV strings, see is_tlv_string).
// Whatever the input, the result parses back as Done.
[[nodiscard]] std::string build_v2(const Header& header);

enum class Status : std::uint8_t { NeedMore, Done, Invalid };

struct ParseResult {
    Status status = Status::NeedMore;
    std::size_t consumed = 0;  // Done: the header's length
    std::string error;         // Invalid: why, short, for the admin's log ("v1: bad source port")
};

// Looks at the start of everything received so far; the caller appends and calls again on
// NeedMore. Invalid is decided as early as the bytes allow: a byte matching neither signature,
// a v1 field that can no longer become valid, a v1 line past kMaxV1Length, a v2 version,
// command, family or length refused as soon as its byte arrives.
[[nodiscard]] ParseResult parse(std::string_view data, Header& out);

// The spec's worst case, "PROXY UNKNOWN" with two full IPv6 addresses and ports, CRLF included.
inline constexpr std::size_t kMaxV1Length = 107;
// The 16 fixed bytes plus at most 2048 of addresses and TLVs. Real headers are far smaller
// (TCP6 with authority and SSL TLVs stays under 600 bytes); the bound caps what one connection
// may make us buffer before a verdict, as HAProxy caps it at its buffer size.
inline constexpr std::size_t kMaxV2Length = 16 + 2048;
// Longest authority, TLS version or cipher string read or sent (HAProxy's authority limit).
inline constexpr std::size_t kMaxTlvString = 255;

// The authority postern accepts and sends: 1..kMaxTlvString bytes of letters, digits, '-' and
// '.', the characters of a DNS host name (RFC 1123; SNI carries nothing else, RFC 6066 §3).
[[nodiscard]] bool is_authority(std::string_view name) noexcept;
// A TLS version or cipher name: 1..kMaxTlvString visible US-ASCII characters (0x21-0x7E).
[[nodiscard]] bool is_tlv_string(std::string_view s) noexcept;
// CRC32c (Castagnoli, RFC 4960 Appendix B), as PP2_TYPE_CRC32C uses it.
[[nodiscard]] std::uint32_t crc32c(std::string_view bytes) noexcept;

}  // namespace postern::protocols::proxy_header
