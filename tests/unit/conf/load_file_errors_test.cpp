// The loader's errors about the config file itself: missing, a folder, and how every error in
// a file is reported (the rest of its errors: load_errors_test.cpp).
#include "conf/load.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <string>

namespace postern::conf {

namespace fs = std::filesystem;
using test::ConfDir;
using test::single_error;
using test::TempDir;

TEST_CASE("conf: a missing config file is one error naming the file") {
    const TempDir dir;
    const fs::path file = dir.path() / "absent.toml";
    const LoadResult result = load_config(file);
    const ConfigError error = single_error(result);
    CHECK(error.file == file.string());
    CHECK(error.line == 0);
    CHECK(error.key.empty());
    CHECK(error.message == "cannot read config file: No such file or directory");
    CHECK(format_error(error) ==
          file.string() + ": cannot read config file: No such file or directory");
}

TEST_CASE("conf: a config folder instead of a file is one error naming it") {
    const TempDir dir;
    const ConfigError error = single_error(load_config(dir.path()));
    CHECK(error.file == dir.path().string());
    CHECK(error.message == "cannot read config file: Is a directory");
}

TEST_CASE("conf: every error in a file is reported, in line order") {
    const ConfDir dir;
    const std::string text = R"([server]
log_level = "loud"

[[certificate]]
cert = "missing.pem"
key = "key.pem"

[[backend]]
name = "imap"
address = "127.0.0.1"

[[listener]]
listen = "127.0.0.1:993"
protocol = "imap"
tls = "maybe"
backend = "imap"
idle_timeout = "forever"

[[listener]]
listen = "127.0.0.1:993"
protocol = "gopher"
backend = "nntp"
)";
    const LoadResult result = dir.load(text);
    INFO(format_errors(result.errors));
    CHECK_FALSE(result.config.has_value());
    // listener[1].backend = "imap" is not an error: backend[1] exists, its address is bad.
    REQUIRE(result.errors.size() == 9);
    const auto keys = std::to_array<std::string>({
        "server.log_level",
        "certificate[1].cert",
        "backend[1].address",
        "tls.default_certificate",
        "listener[1].tls",
        "listener[1].idle_timeout",
        "listener[2].listen",
        "listener[2].protocol",
        "listener[2].backend",
    });
    for (std::size_t i = 0; i < result.errors.size(); ++i) {
        CAPTURE(i);
        CHECK(result.errors[i].key == keys[i]);
        CHECK(result.errors[i].file == dir.config_file().string());
    }
    CHECK(result.errors[8].message == "no backend named \"nntp\" (have: imap)");
}

}  // namespace postern::conf
