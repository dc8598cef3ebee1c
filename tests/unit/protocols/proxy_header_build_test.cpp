// PROXY protocol headers postern sends to backends: exact bytes, and build -> parse round trips.

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

// 2001:db8::<last>
Address v6(std::uint8_t last, std::uint16_t port) {
    return {6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last}, port};
}

Header client(Address from, Address to) {
    Header h;
    h.source = from;
    h.destination = to;
    return h;
}

Header parsed(std::string_view bytes) {
    Header out;
    const ParseResult r = parse(bytes, out);
    REQUIRE(r.status == Status::Done);
    CHECK(r.consumed == bytes.size());
    CHECK(r.error.empty());
    return out;
}

TEST_CASE("proxy_header: build_v2 lays out signature, command, family, length, TLVs in order") {
    Header h = client(v4(192, 0, 2, 1, 56324), v4(198, 51, 100, 10, 993));
    h.authority = "imap.example.com";
    h.tls = TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384"};
    const std::string expected = sig() + from_hex("21 11 004A") +           // PROXY, TCP4, 74 bytes
                                 from_hex("C0000201 C633640A DC04 03E1") +  // addresses, ports
                                 from_hex("02 0010") + "imap.example.com" +
                                 from_hex("20 0028 01 00000000") +  // SSL, CLIENT_SSL, ok
                                 from_hex("21 0007") + "TLSv1.3" + from_hex("23 0016") +
                                 "TLS_AES_256_GCM_SHA384";
    CHECK(build_v2(h) == expected);
    CHECK(parsed(expected) == h);
}

TEST_CASE("proxy_header: build_v2 for IPv6, mixed families and health checks") {
    const std::string six = build_v2(client(v6(1, 1), v6(2, 143)));
    CHECK(six == sig() + from_hex("21 21 0024 20010db8000000000000000000000001"
                                  "20010db8000000000000000000000002 0001 008F"));
    // Mixed: the IPv4 side becomes ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) and the family AF_INET6.
    const std::string mixed = build_v2(client(v4(203, 0, 113, 7, 40000), v6(2, 143)));
    CHECK(mixed == sig() + from_hex("21 21 0024 00000000000000000000FFFFCB007107"
                                    "20010db8000000000000000000000002 9C40 008F"));
    Header local;
    local.local = true;
    local.authority = "ignored.example";  // a health check has no client, so no TLVs either
    CHECK(build_v2(local) == sig() + from_hex("20 00 0000"));
    // No family to send: PROXY over AF_UNSPEC, which receivers treat like LOCAL.
    CHECK(build_v2(client(v4(1, 2, 3, 4, 5), Address{})) == sig() + from_hex("21 00 0000"));
}

TEST_CASE("proxy_header: build_v1 writes TCP4/TCP6 lines, UNKNOWN where v1 has no form") {
    CHECK(build_v1(client(v4(192, 168, 0, 1, 56324), v4(192, 168, 0, 11, 443))) ==
          "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    CHECK(build_v1(client(v6(1, 0), v6(2, 65535))) ==
          "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n");
    CHECK(build_v1(client(v4(192, 168, 0, 1, 1), v6(2, 2))) == "PROXY UNKNOWN\r\n");
    CHECK(build_v1(client(Address{}, Address{})) == "PROXY UNKNOWN\r\n");
    Header local = client(v4(1, 2, 3, 4, 5), v4(1, 2, 3, 4, 6));
    local.local = true;
    CHECK(build_v1(local) == "PROXY UNKNOWN\r\n");
}

TEST_CASE("proxy_header: every header built parses back to itself") {
    Header with_tlvs = client(v6(7, 50000), v4(10, 0, 0, 1, 995));
    with_tlvs.authority = "pop3.example.com";
    with_tlvs.tls = TlsInfo{"TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"};
    Header mapped = with_tlvs;  // what a receiver sees of the mixed header
    mapped.destination = {6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, 995};

    Header only_sni = client(v4(0, 0, 0, 0, 0), v4(255, 255, 255, 255, 65535));
    only_sni.authority = "a";
    Header only_tls = client(v6(0, 1), v6(0xFF, 2));
    only_tls.tls = TlsInfo{"TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"};
    Header local;
    local.local = true;

    struct Row {
        Header sent;
        Header v2;  // what parse(build_v2(sent)) gives
    };
    const std::vector<Row> rows = {
        {client(v4(192, 0, 2, 1, 1), v4(192, 0, 2, 2, 2)), {}},
        {client(v6(1, 1), v6(2, 2)), {}},
        {with_tlvs, mapped},
        {only_sni, {}},
        {only_tls, {}},
        {local, {}},
    };
    for (const Row& row : rows) {
        CAPTURE(build_v1(row.sent));
        const Header expected_v2 = row.v2 == Header{} ? row.sent : row.v2;
        CHECK(parsed(build_v2(row.sent)) == expected_v2);
        // v1 carries addresses only; mixed families and health checks become UNKNOWN.
        Header expected_v1 = row.sent;
        expected_v1.authority.clear();
        expected_v1.tls.reset();
        if (expected_v1.source.family != expected_v1.destination.family) {
            expected_v1 = local;
        }
        CHECK(parsed(build_v1(row.sent)) == expected_v1);
    }
}

TEST_CASE("proxy_header: build_v2 leaves out what the parser would refuse") {
    Header h = client(v4(192, 0, 2, 1, 1), v4(192, 0, 2, 2, 2));
    h.authority = "bad name";
    h.tls = TlsInfo{"", std::string(kMaxTlvString + 1, 'A')};
    const std::string bytes = build_v2(h);
    CHECK(bytes == sig() + from_hex("21 11 0014 C0000201 C0000202 0001 0002 20 0005 01 00000000"));
    Header expected = client(h.source, h.destination);
    expected.tls = TlsInfo{};
    CHECK(parsed(bytes) == expected);

    h.authority = std::string(kMaxTlvString, 'a');
    h.tls = TlsInfo{std::string(kMaxTlvString, 'v'), std::string(kMaxTlvString, 'c')};
    const std::string longest = build_v2(h);
    CHECK(longest.size() == 16 + 12 + (3 + 255) + (3 + 5 + 2 * (3 + 255)));
    CHECK(longest.size() <= kMaxV2Length);
    CHECK(parsed(longest) == h);
}

TEST_CASE("proxy_header: to_string writes addresses the way logs and v1 lines want them") {
    CHECK(to_string(v4(203, 0, 113, 7, 25)) == "203.0.113.7");
    CHECK(to_string(v6(1, 25)) == "2001:db8::1");
    CHECK(to_string(Address{6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, 0}) ==
          "::ffff:192.0.2.1");
    CHECK(to_string(Address{}).empty());
}

TEST_CASE("proxy_header: is_authority and is_tlv_string bound what goes in a TLV") {
    CHECK(is_authority("mail.example.com"));
    CHECK(is_authority("xn--bcher-kva.example"));
    CHECK(is_authority(std::string(kMaxTlvString, 'a')));
    CHECK_FALSE(is_authority(""));
    CHECK_FALSE(is_authority(std::string(kMaxTlvString + 1, 'a')));
    CHECK_FALSE(is_authority("a b"));
    CHECK_FALSE(is_authority("under_score.example"));
    CHECK_FALSE(is_authority(std::string_view("a\0b", 3)));
    CHECK(is_tlv_string("TLS_AES_128_GCM_SHA256"));
    CHECK_FALSE(is_tlv_string(""));
    CHECK_FALSE(is_tlv_string("TLS 1.3"));
    CHECK_FALSE(is_tlv_string("caf\xC3\xA9"));
}

}  // namespace
}  // namespace postern::protocols::proxy_header
