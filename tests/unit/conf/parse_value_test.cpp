#include "conf/parse_value.hpp"

#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <string_view>

namespace postern::conf {

using namespace std::chrono_literals;
using test::contains;

TEST_CASE("conf: durations parse from a whole number and a unit") {
    struct Row {
        std::string_view text;
        std::chrono::milliseconds expected;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"250ms", 250ms},
        {"1ms", 1ms},
        {"30s", 30s},
        {"5m", 5min},
        {"1h", 1h},
        {"90m", 90min},
        {"007s", 7s},
        {"8760h", 8760h},
        {"525600m", 8760h},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.text);
        const auto parsed = parse_duration(row.text);
        CHECK(parsed.error.empty());
        REQUIRE(parsed.value.has_value());
        CHECK(*parsed.value == row.expected);
    }
}

TEST_CASE("conf: malformed, zero and huge durations are refused with a reason") {
    struct Row {
        std::string_view text;
        std::string_view reason;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"", "whole number followed by ms, s, m or h"},
        {"s", "whole number followed by ms, s, m or h"},
        {"30", "no unit"},
        {"30sec", "whole number followed by ms, s, m or h"},
        {"30 s", "whole number followed by ms, s, m or h"},
        {" 30s", "whole number followed by ms, s, m or h"},
        {"1.5s", "whole number followed by ms, s, m or h"},
        {"-5s", "whole number followed by ms, s, m or h"},
        {"+5s", "whole number followed by ms, s, m or h"},
        {"5S", "whole number followed by ms, s, m or h"},
        {"1h30m", "whole number followed by ms, s, m or h"},
        {"0s", "must be greater than 0"},
        {"0ms", "must be greater than 0"},
        {"8761h", "too long"},
        {"99999999999999999999999h", "too long"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.text);
        const auto parsed = parse_duration(row.text);
        CHECK_FALSE(parsed.value.has_value());
        CHECK(contains(parsed.error, row.reason));
        CHECK(contains(parsed.error, "\"" + std::string{row.text} + "\""));
    }
}

TEST_CASE("conf: integer durations are seconds and must be positive") {
    CHECK(duration_from_seconds(30).value == std::optional{std::chrono::milliseconds{30s}});
    CHECK(contains(duration_from_seconds(0).error, "must be greater than 0"));
    CHECK(contains(duration_from_seconds(-1).error, "must be greater than 0"));
    CHECK(contains(duration_from_seconds(INT64_MAX).error, "too long"));
}

TEST_CASE("conf: rates parse as count/window, or off") {
    struct Row {
        std::string_view text;
        std::uint32_t count;
        std::chrono::milliseconds window;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"30/10s", 30, 10s},
        {"1/1s", 1, 1s},
        {"100/1m", 100, 1min},
        {"10/s", 10, 1s},  // a bare unit: one of it
        {"600/m", 600, 1min},
        {"5/h", 5, 1h},
        {"5/1500ms", 5, 1500ms},
        {"1000000/1h", 1'000'000, 1h},
        {"off", 0, 0ms},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.text);
        const auto parsed = parse_rate(row.text);
        CHECK(parsed.error.empty());
        REQUIRE(parsed.value.has_value());
        CHECK(parsed.value->count == row.count);
        CHECK(parsed.value->window == row.window);
        CHECK(parsed.value->off() == (row.count == 0));
    }
}

TEST_CASE("conf: malformed rates, zero counts and windows out of range are refused") {
    struct Row {
        std::string_view text;
        std::string_view reason;
    };
    constexpr std::string_view kForms = "expected \"off\" or new connections per window";
    constexpr auto kRows = std::to_array<Row>({
        {"", kForms},
        {"30", kForms},
        {"30/", kForms},
        {"/10s", kForms},
        {"30/10", kForms},  // no unit
        {"30/10sec", kForms},
        {"30 / 10s", kForms},
        {"-1/10s", kForms},
        {"1.5/10s", kForms},
        {"30/10s/2", kForms},
        {"Off", kForms},
        {"0/10s", "at least 1 (write \"off\" for no limit)"},
        {"1000001/1h", "at most 1000000"},
        {"99999999999999999999999/1s", "at most 1000000"},
        {"30/500ms", "from 1s to 1h"},
        {"30/61m", "from 1s to 1h"},
        {"30/2h", "from 1s to 1h"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.text);
        const auto parsed = parse_rate(row.text);
        CHECK_FALSE(parsed.value.has_value());
        CHECK(contains(parsed.error, row.reason));
        CHECK(contains(parsed.error, "invalid rate \"" + std::string{row.text} + "\""));
    }
}

TEST_CASE("conf: endpoints parse as host:port and [v6]:port") {
    struct Row {
        std::string_view text;
        std::string_view host;
        std::uint16_t port;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"127.0.0.1:993", "127.0.0.1", 993},
        {"0.0.0.0:1", "0.0.0.0", 1},
        {"mail.example.net:65535", "mail.example.net", 65535},
        {"localhost:25", "localhost", 25},
        {"[::1]:143", "::1", 143},
        {"[::]:993", "::", 993},
        {"[2001:db8::17]:110", "2001:db8::17", 110},
        {"[::ffff:192.0.2.1]:25", "::ffff:192.0.2.1", 25},
        {"[fe80::1%eth0]:993", "fe80::1%eth0", 993},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.text);
        const auto parsed = parse_endpoint(row.text);
        CHECK(parsed.error.empty());
        REQUIRE(parsed.value.has_value());
        CHECK(parsed.value->host == row.host);
        CHECK(parsed.value->port == row.port);
        CHECK(parsed.value->to_string() == row.text);
    }
}

TEST_CASE("conf: bad endpoints are refused with a reason") {
    struct Row {
        std::string_view text;
        std::string_view reason;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"", "empty"},
        {"127.0.0.1", "no port"},
        {"127.0.0.1:", "no port after ':'"},
        {"[::1]", "no port"},
        {"127.0.0.1:0", "port 0 is not allowed"},
        {"127.0.0.1:65536", "out of range"},
        {"127.0.0.1:99999999999999999999999", "out of range"},
        {"127.0.0.1:imap", "is not a number"},
        {"127.0.0.1:-1", "is not a number"},
        {":993", "empty host"},
        {"[]:993", "empty host"},
        {"[::1:993", "'[' without a matching ']'"},
        {"::1]:993", "']' without a matching '['"},
        {"::1:993", "needs brackets"},
        {"[127.0.0.1]:993", "brackets are only for IPv6"},
        {"[::1]993", "expected ':'"},
        {"[::g]:993", "not an IPv6 address"},
        {"[fe80::1%]:993", "zone"},
        {"mail example:25", "host may only hold"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.text);
        const auto parsed = parse_endpoint(row.text);
        CHECK_FALSE(parsed.value.has_value());
        CHECK(contains(parsed.error, row.reason));
        CHECK(contains(parsed.error, "invalid address \"" + std::string{row.text} + "\""));
    }
}

TEST_CASE("conf: DNS names are dot-separated LDH labels") {
    CHECK(is_dns_name("mail.example.net"));
    CHECK(is_dns_name("localhost"));
    CHECK(is_dns_name("xn--bcher-kva.example"));
    CHECK(is_dns_name("a-1.b2"));
    CHECK(is_dns_name(std::string(63, 'a') + ".net"));
    CHECK_FALSE(is_dns_name(""));
    CHECK_FALSE(is_dns_name("mail example.net"));
    CHECK_FALSE(is_dns_name("*.example.net"));
    CHECK_FALSE(is_dns_name("mail.example.net."));
    CHECK_FALSE(is_dns_name(".example.net"));
    CHECK_FALSE(is_dns_name("mail..example.net"));
    CHECK_FALSE(is_dns_name("-mail.example.net"));
    CHECK_FALSE(is_dns_name("mail-.example.net"));
    CHECK_FALSE(is_dns_name("mail_1.example.net"));
    CHECK_FALSE(is_dns_name(std::string(64, 'a') + ".net"));
    std::string long_name;
    while (long_name.size() < 254) {
        long_name += "abcdefghi.";
    }
    long_name.resize(254);
    long_name.back() = 'x';
    CHECK_FALSE(is_dns_name(long_name));
}

}  // namespace postern::conf
