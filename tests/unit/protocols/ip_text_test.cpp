// Address text for the PROXY protocol: inet_pton's grammar in, RFC 5952 out.

#include "protocols/ip_text.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string_view>
#include <vector>

namespace postern::protocols::ip_text {
namespace {

Ipv6 v6(std::initializer_list<std::uint16_t> groups) {
    REQUIRE(groups.size() == 8);
    Ipv6 out{};
    std::size_t i = 0;
    for (const std::uint16_t g : groups) {
        out[i++] = static_cast<std::uint8_t>(g >> 8U);
        out[i++] = static_cast<std::uint8_t>(g & 0xFFU);
    }
    return out;
}

TEST_CASE("ip_text: dotted quads of 0..255, exactly four, no heading zero") {
    CHECK(parse_ipv4("203.0.113.7") == Ipv4{203, 0, 113, 7});
    CHECK(parse_ipv4("0.0.0.0") == Ipv4{0, 0, 0, 0});
    CHECK(parse_ipv4("255.255.255.255") == Ipv4{255, 255, 255, 255});
    for (const std::string_view bad :
         {"", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1.2.3.00", "1..3.4",
          ".1.2.3", "1.2.3.4 ", "1.2.3.-4", "0x1.2.3.4", "1.2.3.1000", "::1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv4(bad).has_value());
    }
}

TEST_CASE("ip_text: could_be_ipv4 accepts exactly the prefixes of valid dotted quads") {
    for (const std::string_view ok : {"", "1", "1.", "1.2.3", "1.2.3.", "25", "255.2", "0."}) {
        CAPTURE(ok);
        CHECK(could_be_ipv4(ok));
    }
    for (const std::string_view bad : {"256", "01", "1..", ".", "1.2.3.4.", "1.2.3.4444", "a"}) {
        CAPTURE(bad);
        CHECK_FALSE(could_be_ipv4(bad));
    }
}

TEST_CASE("ip_text: IPv6 groups, one '::' and an IPv4 tail, as inet_pton reads them") {
    struct Row {
        std::string_view text;
        Ipv6 bytes;
    };
    const std::vector<Row> rows = {
        {"::", v6({0, 0, 0, 0, 0, 0, 0, 0})},
        {"::1", v6({0, 0, 0, 0, 0, 0, 0, 1})},
        {"1::", v6({1, 0, 0, 0, 0, 0, 0, 0})},
        {"2001:db8::1", v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1})},
        {"2001:DB8:0:0:0:0:0:1", v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1})},
        {"1:2:3:4:5:6:7:8", v6({1, 2, 3, 4, 5, 6, 7, 8})},
        {"1:2:3:4:5:6:7::", v6({1, 2, 3, 4, 5, 6, 7, 0})},
        {"::2:3:4:5:6:7:8", v6({0, 2, 3, 4, 5, 6, 7, 8})},
        {"fe80::1:0:0:1", v6({0xfe80, 0, 0, 0, 1, 0, 0, 1})},
        {"::ffff:192.0.2.1", v6({0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201})},
        {"::192.0.2.1", v6({0, 0, 0, 0, 0, 0, 0xc000, 0x0201})},
        {"1:2:3:4:5:6:1.2.3.4", v6({1, 2, 3, 4, 5, 6, 0x0102, 0x0304})},
        {"0001:0002::000a", v6({1, 2, 0, 0, 0, 0, 0, 10})},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        CHECK(parse_ipv6(row.text) == row.bytes);
    }
}

TEST_CASE("ip_text: malformed IPv6 text is refused") {
    for (const std::string_view bad : {"",
                                       ":",
                                       ":::",
                                       "1",
                                       "1:2:3:4:5:6:7",
                                       "1:2:3:4:5:6:7:8:9",
                                       "1::2::3",
                                       "1::2:3:4:5:6:7:8",
                                       "12345::",
                                       ":1::",
                                       "1::2:",
                                       "1:2:3:4:5:6:7:8:",
                                       "::g",
                                       "1.2.3.4",
                                       "::1.2.3",
                                       "::01.2.3.4",
                                       "1.2.3.4::",
                                       "::1.2.3.4:5",
                                       "1:2:3:4:5:6:7:1.2.3.4",
                                       " ::1",
                                       "::1 ",
                                       "fe80::1%eth0",
                                       "[::1]",
                                       "0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv6(bad).has_value());
    }
}

TEST_CASE("ip_text: formatting follows RFC 5952 and parses back to the same bytes") {
    struct Row {
        Ipv6 bytes;
        std::string_view text;
    };
    const std::vector<Row> rows = {
        {v6({0, 0, 0, 0, 0, 0, 0, 0}), "::"},
        {v6({0, 0, 0, 0, 0, 0, 0, 1}), "::1"},
        {v6({1, 0, 0, 0, 0, 0, 0, 0}), "1::"},
        {v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}), "2001:db8::1"},
        // §4.2.2: a single zero group stays; §4.2.3: the longest run, the first of equal ones.
        {v6({0x2001, 0xdb8, 0, 1, 1, 1, 1, 1}), "2001:db8:0:1:1:1:1:1"},
        {v6({0x2001, 0, 0, 1, 0, 0, 0, 1}), "2001:0:0:1::1"},
        {v6({0x2001, 0xdb8, 0, 0, 1, 0, 0, 1}), "2001:db8::1:0:0:1"},
        {v6({0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff}),
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
        {v6({0xABCD, 0x0ef0, 0, 0, 0, 0, 0x10, 0}), "abcd:ef0::10:0"},
        // §5: IPv4-mapped addresses end in a dotted quad.
        {v6({0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201}), "::ffff:192.0.2.1"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.text);
        CHECK(format_ipv6(row.bytes) == row.text);
        CHECK(parse_ipv6(row.text) == row.bytes);
    }
    CHECK(format_ipv4({203, 0, 113, 7}) == "203.0.113.7");
    CHECK(format_ipv4({0, 0, 0, 0}) == "0.0.0.0");
}

}  // namespace
}  // namespace postern::protocols::ip_text
