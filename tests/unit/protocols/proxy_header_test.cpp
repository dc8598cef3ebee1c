// PROXY protocol header parsing (HAProxy's doc/proxy-protocol.txt): the spec's examples, every
// split point, and every refusal with the reason the admin will read.

#include "protocols/proxy_header.hpp"

#include "tests/unit/protocols/proxy_header_support.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace postern::protocols::proxy_header {
namespace {

using test::from_hex;
using test::sig;
using test::v4;

Address v6_all(std::uint8_t byte, std::uint16_t port) {
    Address out{6, {}, port};
    out.bytes.fill(byte);
    return out;
}

Header local() {
    Header h;
    h.local = true;
    return h;
}

// Every prefix asks for more and leaves `out` alone; the whole header, alone or followed by
// any part of a client's first line, is Done with exactly its own length consumed.
void check_every_split(std::string_view header, const Header& expected) {
    for (std::size_t k = 0; k < header.size(); ++k) {
        Header out;
        const ParseResult r = parse(header.substr(0, k), out);
        CAPTURE(k);
        REQUIRE(r.status == Status::NeedMore);
        CHECK(r.error.empty());
        CHECK(out == Header{});
    }
    const std::string stream = std::string(header) + "EHLO client.example\r\n";
    for (std::size_t k = header.size(); k <= stream.size(); ++k) {
        Header out;
        const ParseResult r = parse(std::string_view(stream).substr(0, k), out);
        CAPTURE(k);
        REQUIRE(r.status == Status::Done);
        CHECK(r.consumed == header.size());
        CHECK(out == expected);
    }
}

TEST_CASE("proxy_header: the spec's v1 example before an HTTP request") {
    const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    Header expected;
    expected.source = v4(192, 168, 0, 1, 56324);
    expected.destination = v4(192, 168, 0, 11, 443);
    check_every_split(line, expected);
    Header out;
    const auto r = parse(line + "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n", out);
    CHECK(r.status == Status::Done);
    CHECK(r.consumed == line.size());
    CHECK(to_string(out.source) == "192.168.0.1");
}

TEST_CASE("proxy_header: the spec's longest v1 lines (56, 104, 15 and 107 bytes)") {
    const std::string tcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    REQUIRE(tcp4.size() == 56);
    Header h4;
    h4.source = v4(255, 255, 255, 255, 65535);
    h4.destination = h4.source;
    check_every_split(tcp4, h4);

    const std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string tcp6 = "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n";
    REQUIRE(tcp6.size() == 104);
    Header h6;
    h6.source = v6_all(0xFF, 65535);
    h6.destination = h6.source;
    check_every_split(tcp6, h6);

    check_every_split("PROXY UNKNOWN\r\n", local());
    const std::string worst = "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n";
    REQUIRE(worst.size() == kMaxV1Length);
    check_every_split(worst, local());  // spec §2.1: the rest of an UNKNOWN line is ignored
}

TEST_CASE("proxy_header: v1 TCP6 takes any inet_pton form, ports 0 and 65535") {
    Header h;
    h.source = {6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0};
    h.destination = {6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, 65535};
    check_every_split("PROXY TCP6 2001:DB8:0::1 ::ffff:192.0.2.1 0 65535\r\n", h);
}

TEST_CASE("proxy_header: the spec's v2 address blocks, TCP over IPv4 and IPv6") {
    Header h4;
    h4.source = v4(192, 168, 0, 1, 56324);
    h4.destination = v4(192, 168, 0, 11, 443);
    check_every_split(sig() + from_hex("21 11 000C C0A80001 C0A8000B DC04 01BB"), h4);

    Header h6;
    h6.source = v6_all(0x11, 1);
    h6.destination = v6_all(0x22, 2);
    check_every_split(sig() + from_hex("21 21 0024") + std::string(16, '\x11') +
                          std::string(16, '\x22') + from_hex("0001 0002"),
                      h6);
}

TEST_CASE("proxy_header: v2 LOCAL and AF_UNSPEC carry no address; their blocks are skipped") {
    check_every_split(sig() + from_hex("20 00 0000"), local());
    check_every_split(sig() + from_hex("21 00 0000"), local());  // PROXY, family unspecified
    // Spec §2.2: "must not assume zero is presented for LOCAL connections"; LOCAL ignores the
    // family, so even AF_UNIX and UDP blocks (refused under PROXY) are skipped unread.
    check_every_split(sig() + from_hex("20 31 00D8") + std::string(216, 'u'), local());
    check_every_split(sig() + from_hex("20 12 000C C0A80001 C0A8000B DC04 01BB"), local());
    check_every_split(sig() + from_hex("21 00 0003 04 0000"), local());
}

TEST_CASE("proxy_header: v2 TLVs: authority and SSL read, the others skipped") {
    const std::string header =
        sig() + from_hex("21 11 005E C0000201 C633640A DC04 03E1") +
        from_hex("01 0008 08 696d61702f3176") +     // ALPN "imap/1v" (with its length)
        from_hex("04 0002 0000") +                  // NOOP
        from_hex("02 0010") + "imap.example.com" +  // AUTHORITY
        from_hex("EA 0003 767063") +                // AWS vendor TLV
        from_hex("20 0023 05 00000000") +           // SSL: CLIENT_SSL|CERT_SESS, verified
        from_hex("22 0008") + "client.x" +          //   CN, skipped
        from_hex("21 0007") + "TLSv1.2" +           //   version
        from_hex("23 0006") + "AES128" +            //   cipher
        from_hex("05 0000");                        // UNIQUE_ID, empty
    Header expected;
    expected.source = v4(192, 0, 2, 1, 56324);
    expected.destination = v4(198, 51, 100, 10, 993);
    expected.authority = "imap.example.com";
    expected.tls = TlsInfo{"TLSv1.2", "AES128"};
    check_every_split(header, expected);
}

TEST_CASE("proxy_header: a v2 header of exactly kMaxV2Length bytes is still read") {
    // 12 address bytes, then one NOOP TLV filling the block up to 2048 bytes.
    const std::string header = sig() + from_hex("21 11 0800 C0000201 C633640A DC04 03E1") +
                               from_hex("04 07F1") + std::string(2048 - 12 - 3, '\0');
    REQUIRE(header.size() == kMaxV2Length);
    Header out;
    const ParseResult r = parse(header + "+OK\r\n", out);
    CHECK(r.status == Status::Done);
    CHECK(r.consumed == kMaxV2Length);
    CHECK(parse(std::string_view(header).substr(0, kMaxV2Length - 1), out).status ==
          Status::NeedMore);
}

TEST_CASE("proxy_header: an SSL TLV without PP2_CLIENT_SSL says the client used no TLS") {
    const std::string header = sig() + from_hex("21 11 0019 C0000201 C633640A DC04 03E1") +
                               from_hex("20 000A 00 00000001 21 0002") + "v1";
    Header out;
    REQUIRE(parse(header, out).status == Status::Done);
    CHECK_FALSE(out.tls.has_value());
    CHECK(out.source == v4(192, 0, 2, 1, 56324));
}

TEST_CASE("proxy_header: crc32c matches RFC 4960's check value and guards the header") {
    CHECK(crc32c("123456789") == 0xE3069283U);
    CHECK(crc32c("") == 0U);
    std::string header =
        sig() + from_hex("21 11 0013 C0000201 C633640A DC04 03E1 03 0004 00000000");
    const std::uint32_t crc = crc32c(header);
    for (std::size_t i = 0; i < 4; ++i) {
        header[header.size() - 4 + i] = static_cast<char>((crc >> (24 - 8 * i)) & 0xFFU);
    }
    Header out;
    CHECK(parse(header, out).status == Status::Done);
    header[20] = '\x07';  // the destination address, after the checksum was taken
    const auto r = parse(header, out);
    CHECK(r.status == Status::Invalid);
    CHECK(r.error == "v2: CRC32C mismatch");
}

struct Bad {
    std::string input;
    std::string_view error;
    std::size_t decided_at;  // the shortest prefix already refused
};

void check_refused(const std::vector<Bad>& rows) {
    for (const Bad& row : rows) {
        CAPTURE(row.input);
        Header out;
        out.authority = "untouched";
        const ParseResult r = parse(row.input, out);
        CHECK(r.status == Status::Invalid);
        CHECK(r.error == row.error);
        CHECK(r.consumed == 0);
        CHECK(out.authority == "untouched");
        // Decided as early as the bytes allow, and never taken back by later bytes.
        REQUIRE(row.decided_at <= row.input.size());
        CHECK(parse(std::string_view(row.input).substr(0, row.decided_at - 1), out).status ==
              Status::NeedMore);
        CHECK(parse(std::string_view(row.input).substr(0, row.decided_at), out).error == row.error);
        CHECK(parse(row.input + "\r\n\r\nQUIT\r\n", out).status == Status::Invalid);
    }
}

TEST_CASE("proxy_header: neither signature is refused at the first differing byte") {
    check_refused({
        {"GET / HTTP/1.1\r\n", "not a PROXY protocol header", 1},
        {"EHLO client.example\r\n", "not a PROXY protocol header", 1},
        {"\x16\x03\x01\x02", "not a PROXY protocol header", 1},
        {"PROXZ TCP4", "not a PROXY protocol header", 5},
        {"PROXY\tTCP4", "not a PROXY protocol header", 6},
        {"proxy TCP4", "not a PROXY protocol header", 1},
        {sig().substr(0, 4) + "\x01", "not a PROXY protocol header", 5},
        {"\r\n\r\n\r\n", "not a PROXY protocol header", 5},
    });
}

TEST_CASE("proxy_header: v1 lines refused, each with its reason") {
    const std::string ok4 = "192.0.2.1 198.51.100.10 ";
    check_refused({
        {"PROXY TCP5 1.2.3.4", "v1: unknown protocol", 10},
        {"PROXY tcp4 1.2.3.4", "v1: unknown protocol", 7},
        {"PROXY UNKNOWNX\r\n", "v1: unknown protocol", 14},
        {"PROXY UDP4 1.2.3.4", "v1: unknown protocol", 8},
        {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "v1: bad source address", 20},
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "v1: bad source address", 13},
        {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "v1: bad source address", 17},
        {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "v1: bad source address", 12},
        {"PROXY TCP6 192.0.2.1 ::1 1 2\r\n", "v1: bad source address", 21},
        {"PROXY TCP6 ::1 1::2::3 1 2\r\n", "v1: bad destination address", 23},
        {"PROXY TCP6 ::1 ::g 1 2\r\n", "v1: bad destination address", 18},
        {"PROXY TCP4 " + ok4 + "65536 2\r\n", "v1: bad source port", 40},
        {"PROXY TCP4 " + ok4 + "080 2\r\n", "v1: bad source port", 37},
        {"PROXY TCP4 " + ok4 + "-1 2\r\n", "v1: bad source port", 36},
        {"PROXY TCP4 " + ok4 + "1 65536\r\n", "v1: bad destination port", 42},
        {"PROXY TCP4 " + ok4 + "1 2x\r\n", "v1: bad destination port", 39},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "v1: expected exactly one space", 12},
        {"PROXY TCP4 " + ok4 + " 1 2\r\n", "v1: expected exactly one space", 36},
        {"PROXY TCP4 " + ok4 + "1\r\n", "v1: missing fields", 38},
        {"PROXY TCP4\r\n", "v1: missing fields", 12},
        {"PROXY TCP4 " + ok4 + "1 2 3\r\n", "v1: too many fields", 39},
        {"PROXY TCP4 " + ok4 + "1 2 \r\n", "v1: too many fields", 39},
        {"PROXY TCP4 " + ok4 + "1 2\n", "v1: LF without CR", 39},
        {"PROXY TCP4 " + ok4 + "1 2\rX", "v1: CR without LF", 40},
        {"PROXY UNKNOWN \x01\r\n", "v1: bad character", 15},
        {"PROXY UNKNOWN " + std::string(93, 'x'), "v1: line too long", kMaxV1Length},
        {"PROXY UNKNOWN " + std::string(92, 'x') + "\r\n", "v1: line too long", kMaxV1Length},
    });
    Header out;  // the longest ignored UNKNOWN tail still fits
    CHECK(parse("PROXY UNKNOWN " + std::string(91, 'x') + "\r\n", out).consumed == kMaxV1Length);
}

TEST_CASE("proxy_header: v2 headers refused, each with its reason") {
    const std::string tcp4 = sig() + from_hex("21 11");
    const std::string addr4 = from_hex("C0000201 C633640A DC04 03E1");
    check_refused({
        {sig() + from_hex("11 11 000C") + addr4, "v2: unsupported version", 13},
        {sig() + from_hex("31 11 000C") + addr4, "v2: unsupported version", 13},
        {sig() + from_hex("22 11 000C") + addr4, "v2: unknown command", 13},
        {sig() + from_hex("21 12 000C") + addr4, "v2: UDP refused", 14},
        {sig() + from_hex("21 22 0024") + std::string(36, '\0'), "v2: UDP refused", 14},
        {sig() + from_hex("21 31 00D8") + std::string(216, '\0'), "v2: AF_UNIX refused", 14},
        {sig() + from_hex("21 32 00D8") + std::string(216, '\0'), "v2: AF_UNIX refused", 14},
        {sig() + from_hex("21 10 000C") + addr4, "v2: unsupported address family", 14},
        {sig() + from_hex("21 41 000C") + addr4, "v2: unknown address family or transport", 14},
        {sig() + from_hex("20 13 0000"), "v2: unknown address family or transport", 14},
        {tcp4 + from_hex("0801"), "v2: header too long", 16},
        {tcp4 + from_hex("FFFF") + addr4, "v2: header too long", 16},
        {tcp4 + from_hex("000B") + addr4.substr(0, 11), "v2: address block truncated", 16},
        {sig() + from_hex("21 21 000C") + addr4, "v2: address block truncated", 16},
        {tcp4 + from_hex("000E") + addr4 + from_hex("0200"), "v2: truncated TLV", 30},
        {tcp4 + from_hex("0011") + addr4 + from_hex("02 0003 6162"), "v2: truncated TLV", 33},
        {tcp4 + from_hex("000F") + addr4 + from_hex("02 0000"), "v2: bad authority", 31},
        {tcp4 + from_hex("0012") + addr4 + from_hex("02 0003") + "a b", "v2: bad authority", 34},
        {tcp4 + from_hex("0012") + addr4 + from_hex("02 0003") + "a_b", "v2: bad authority", 34},
        {tcp4 + from_hex("0014") + addr4 + from_hex("02 0001 61 02 0001 62"), "v2: bad authority",
         36},
        {tcp4 + from_hex("0013") + addr4 + from_hex("20 0004 01000000"), "v2: bad SSL TLV", 35},
        {tcp4 + from_hex("0016") + addr4 + from_hex("20 0007 01 00000000 21 00"),
         "v2: truncated SSL sub-TLV", 38},
        {tcp4 + from_hex("0018") + addr4 + from_hex("20 0009 01 00000000 21 0001 20"),
         "v2: bad SSL version", 40},
        {tcp4 + from_hex("0017") + addr4 + from_hex("20 0008 01 00000000 23 0000"),
         "v2: bad SSL cipher", 39},
        {tcp4 + from_hex("0014") + addr4 + from_hex("03 0005 0000000000"), "v2: bad CRC32C", 36},
    });
}

}  // namespace
}  // namespace postern::protocols::proxy_header
