// [metrics]: listen read as an endpoint, off when absent, refused (file:line:col, key) when it
// is no address, collides with a listener's, or the table has another key.
#include "conf/load.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <string>

namespace postern::conf {

using test::ConfDir;
using test::contains;
using test::kValidHead;
using test::kValidListener;
using test::line_of;
using test::single_error;

TEST_CASE("conf: [metrics] listen is read, and absent means off") {
    const ConfDir dir;
    const LoadResult off = dir.load(std::string{kValidHead} + std::string{kValidListener});
    REQUIRE(off.config.has_value());
    CHECK_FALSE(off.config->metrics.listen.has_value());

    const std::string text = std::string{kValidHead} + std::string{kValidListener} +
                             "\n[metrics]\nlisten = \"[::1]:9150\"\n";
    const LoadResult on = dir.load(text);
    INFO(format_errors(on.errors));
    REQUIRE(on.config.has_value());
    REQUIRE(on.config->metrics.listen.has_value());
    CHECK(on.config->metrics.listen->host == "::1");
    CHECK(on.config->metrics.listen->port == 9150);
    CHECK(on.config->metrics.listen_at.line == line_of(text, "listen = \"[::1]"));
}

TEST_CASE("conf: a bad [metrics] listen is refused naming metrics.listen") {
    const ConfDir dir;
    const std::string base = std::string{kValidHead} + std::string{kValidListener};

    std::string text = base + "\n[metrics]\nlisten = \"9150\"\n";
    ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "metrics.listen");
    CHECK(error.line == line_of(text, "listen = \"9150\""));

    text = base + "\n[metrics]\nlisten = \"127.0.0.1:993\"\n";
    error = single_error(dir.load(text));
    CHECK(error.key == "metrics.listen");
    CHECK(contains(error.message, "already used by listener[1].listen"));

    text = base + "\n[metrics]\nlisten = \"0.0.0.0:993\"\n";
    error = single_error(dir.load(text));
    CHECK(error.key == "metrics.listen");
    CHECK(contains(error.message, "overlaps"));

    text = base + "\n[metrics]\nport = 9150\n";
    error = single_error(dir.load(text));
    CHECK(error.key == "metrics.port");
}

}  // namespace postern::conf
