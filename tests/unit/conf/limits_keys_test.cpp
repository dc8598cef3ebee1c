// The connection limits' keys: server.max_sessions, listener[].max_sessions_per_client and
// listener[].max_new_per_client. Defaults, "off" and 0, values as written, located errors.

#include "conf/load.hpp"
#include "conf/parse_value.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace postern::conf {

using namespace std::chrono_literals;
using test::ConfDir;
using test::kValidHead;
using test::kValidListener;
using test::line_of;
using test::single_error;

namespace {

Config require_config(const LoadResult& result) {
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.empty());
    REQUIRE(result.config.has_value());
    return *result.config;
}

std::string with_listener_lines(std::string_view lines) {
    return std::string{kValidHead} + std::string{kValidListener} + std::string{lines} + "\n";
}

}  // namespace

TEST_CASE("conf: the limits take their defaults when omitted") {
    const ConfDir dir;
    const Config config = require_config(dir.load(with_listener_lines("")));
    CHECK(config.server.max_sessions == 10'000);
    CHECK_FALSE(config.server.max_sessions_set);
    const ListenerSpec& listener = config.listeners.at(0);
    CHECK(listener.max_sessions_per_client == 50);
    CHECK(listener.max_new_per_client == Rate{30, 10s});
}

TEST_CASE("conf: the limits load as written; 0 and \"off\" switch the per-client ones off") {
    const ConfDir dir;
    const std::string text =
        "[server]\nmax_sessions = 2500\n" +
        with_listener_lines("max_sessions_per_client = 0\nmax_new_per_client = \"off\"") +
        "\n[[listener]]\nlisten = \"127.0.0.1:143\"\nprotocol = \"imap\"\n"
        "backend = \"imap\"\nmax_sessions_per_client = 1000000\n"
        "max_new_per_client = \"100/1m\"\n";
    const Config config = require_config(dir.load(text));
    CHECK(config.server.max_sessions == 2500);
    CHECK(config.server.max_sessions_set);
    CHECK(config.server.max_sessions_at.line == 2);
    REQUIRE(config.listeners.size() == 2);
    CHECK(config.listeners[0].max_sessions_per_client == 0);
    CHECK(config.listeners[0].max_new_per_client.off());
    CHECK(config.listeners[1].max_sessions_per_client == 1'000'000);
    CHECK(config.listeners[1].max_new_per_client == Rate{100, 1min});

    SUBCASE("max_sessions from 1 to 1000000") {
        CHECK(require_config(dir.load("[server]\nmax_sessions = 1\n")).server.max_sessions == 1);
        CHECK(require_config(dir.load("[server]\nmax_sessions = 1000000\n")).server.max_sessions ==
              1'000'000);
    }
}

TEST_CASE("conf: a limit out of range or of the wrong type is reported at its line") {
    const ConfDir dir;
    struct Row {
        std::string_view line;
        bool server;  // a [server] key, else the listener's
        std::string_view key;
        std::string_view message;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"max_sessions = 0", true, "server.max_sessions", "0 is out of range (1 to 1000000)"},
        {"max_sessions = 1000001", true, "server.max_sessions",
         "1000001 is out of range (1 to 1000000)"},
        {"max_sessions = \"100\"", true, "server.max_sessions",
         "expected a whole number from 1 to 1000000, got a string"},
        {"max_sessions_per_client = -1", false, "listener[1].max_sessions_per_client",
         "-1 is out of range (0 to 1000000)"},
        {"max_sessions_per_client = true", false, "listener[1].max_sessions_per_client",
         "expected a whole number from 0 to 1000000, got a boolean"},
        {"max_new_per_client = 30", false, "listener[1].max_new_per_client",
         R"(expected a rate such as "30/10s" (in quotes), or "off", got an integer)"},
        {"max_new_per_client = \"0/10s\"", false, "listener[1].max_new_per_client",
         R"(invalid rate "0/10s": the count must be at least 1 (write "off" for no limit))"},
        {"max_new_per_client = \"30/10\"", false, "listener[1].max_new_per_client",
         "invalid rate \"30/10\": expected \"off\" or new connections per window, e.g. "
         "\"30/10s\", \"100/1m\", \"10/s\""},
        {"max_new_per_client = \"30/2h\"", false, "listener[1].max_new_per_client",
         "invalid rate \"30/2h\": the window must be from 1s to 1h"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.line);
        const std::string text = row.server ? "[server]\n" + std::string{row.line} + "\n"
                                            : with_listener_lines(row.line);
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == row.key);
        CHECK(error.line == line_of(text, row.line));
        CHECK(error.message == row.message);
    }
}

TEST_CASE("conf: a rate is written back as it would be configured, and parses to itself") {
    CHECK(to_string(Rate{30, 10s}) == "30/10s");
    CHECK(to_string(Rate{100, 1min}) == "100/1m");
    CHECK(to_string(Rate{5, 1h}) == "5/1h");
    CHECK(to_string(Rate{5, 1500ms}) == "5/1500ms");
    CHECK(to_string(Rate{}) == "off");
    for (const Rate& rate : {Rate{30, 10s}, Rate{1, 90s}, Rate{7, 1500ms}, Rate{}}) {
        CAPTURE(to_string(rate));
        CHECK(parse_rate(to_string(rate)).value == std::optional{rate});
    }
}

}  // namespace postern::conf
