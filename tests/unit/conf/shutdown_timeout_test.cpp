// server.shutdown_timeout (proxy/drain.hpp): its default, durations as the listeners' timeouts
// are written, 0 (no drain), and located errors.

#include "conf/load.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <string>
#include <string_view>

namespace postern::conf {

using namespace std::chrono_literals;
using test::ConfDir;
using test::line_of;
using test::single_error;

namespace {

std::chrono::milliseconds timeout_of(const LoadResult& result) {
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.empty());
    REQUIRE(result.config.has_value());
    return result.config->server.shutdown_timeout;
}

}  // namespace

TEST_CASE("conf: shutdown_timeout is 30s unless written; 0 switches the drain off") {
    const ConfDir dir;
    CHECK(timeout_of(dir.load("[server]\n")) == 30s);
    CHECK(timeout_of(dir.load("[server]\nshutdown_timeout = \"2m\"\n")) == 2min);
    CHECK(timeout_of(dir.load("[server]\nshutdown_timeout = \"1500ms\"\n")) == 1500ms);
    CHECK(timeout_of(dir.load("[server]\nshutdown_timeout = 45\n")) == 45s);
    CHECK(timeout_of(dir.load("[server]\nshutdown_timeout = \"0s\"\n")) == 0ms);
    CHECK(timeout_of(dir.load("[server]\nshutdown_timeout = 0\n")) == 0ms);
}

TEST_CASE("conf: a wrong shutdown_timeout is reported at its line with its key") {
    const ConfDir dir;
    struct Row {
        std::string_view line;
        std::string_view message;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"shutdown_timeout = \"30\"", "invalid duration \"30\": no unit (ms, s, m or h)"},
        {"shutdown_timeout = -1", "invalid duration -1: must be 0 or more"},
        {"shutdown_timeout = \"9000h\"",
         "invalid duration \"9000h\": too long (at most 8760h, 365 days)"},
        {"shutdown_timeout = true",
         "expected a duration such as \"30s\" or a whole number of seconds, got a boolean"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.line);
        const std::string text = "[server]\n" + std::string{row.line} + "\n";
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "server.shutdown_timeout");
        CHECK(error.line == line_of(text, row.line));
        CHECK(error.column == 20);  // the value
        CHECK(error.message == row.message);
    }
}

}  // namespace postern::conf
