#include "conf/errors.hpp"

#include <doctest/doctest.h>

namespace postern::conf {

TEST_CASE("conf: an error renders as file:line:col: key: message") {
    const ConfigError error{"/etc/postern/postern.toml", 14, 11, "listener[2].backend",
                            "no backend named \"imapx\" (have: imap)"};
    CHECK(format_error(error) ==
          "/etc/postern/postern.toml:14:11: listener[2].backend: no backend named \"imapx\" "
          "(have: imap)");
}

TEST_CASE("conf: an error leaves out an unknown position and an empty key") {
    CHECK(format_error({"p.toml", 0, 0, "", "cannot read config file: Permission denied"}) ==
          "p.toml: cannot read config file: Permission denied");
    CHECK(format_error({"p.toml", 3, 0, "tls", "bad"}) == "p.toml:3: tls: bad");
    CHECK(format_error({"", 0, 0, "", "bad"}) == "bad");
}

TEST_CASE("conf: several errors render one per line") {
    const std::vector<ConfigError> errors{{"a.toml", 1, 2, "x", "one"},
                                          {"a.toml", 3, 4, "", "two"}};
    CHECK(format_errors(errors) == "a.toml:1:2: x: one\na.toml:3:4: two\n");
    CHECK(format_errors({}).empty());
}

}  // namespace postern::conf
