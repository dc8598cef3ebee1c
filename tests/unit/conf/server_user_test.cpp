// server.user and server.group (privilege separation): names resolve to ids at load, mistakes
// name file:line:col and the key, and an exec backend may not ask for another identity.
#include "conf_test_support.hpp"

#include <string>

namespace postern::conf::test {
namespace {

Config require_config(const LoadResult& result) {
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.empty());
    REQUIRE(result.config.has_value());
    return *result.config;
}

std::string config(std::string_view server, std::string_view backends = {}) {
    return "[server]\n" + std::string{server} + std::string{kValidHead} + std::string{backends} +
           std::string{kValidListener};
}

}  // namespace

TEST_CASE("conf: server.user and server.group resolve to ids; the group defaults to the user's") {
    const ConfDir dir;
    SUBCASE("user only") {
        const Config c = require_config(dir.load(config("user = \"nobody\"\n")));
        CHECK(c.server.user == "nobody");
        CHECK(c.server.uid == 65534U);
        CHECK(c.server.gid == 65534U);  // nobody's primary group, nogroup
    }
    SUBCASE("user and group") {
        const Config c = require_config(dir.load(config("user = \"nobody\"\ngroup = \"root\"\n")));
        CHECK(c.server.uid == 65534U);
        CHECK(c.server.gid == 0U);
    }
    SUBCASE("neither: stay as started") {
        const Config c = require_config(dir.load(config("")));
        CHECK(c.server.user.empty());
        CHECK_FALSE(c.server.uid.has_value());
    }
}

TEST_CASE("conf: server.user mistakes name their key and position") {
    const ConfDir dir;
    SUBCASE("unknown user") {
        const ConfigError e = single_error(dir.load(config("user = \"no-such-user-here\"\n")));
        CHECK(e.file == dir.config_file().string());
        CHECK(e.key == "server.user");
        CHECK(e.line == 2);
        CHECK(e.column == 8);
        CHECK(e.message == "no user named \"no-such-user-here\"");
    }
    SUBCASE("unknown group") {
        const ConfigError e =
            single_error(dir.load(config("user = \"nobody\"\ngroup = \"no-such-group-here\"\n")));
        CHECK(e.key == "server.group");
        CHECK(e.line == 3);
        CHECK(e.message == "no group named \"no-such-group-here\"");
    }
    SUBCASE("a group without a user") {
        const ConfigError e = single_error(dir.load(config("group = \"nogroup\"\n")));
        CHECK(e.key == "server.group");
        CHECK(contains(e.message, "needs server.user"));
    }
}

TEST_CASE("conf: with server.user, an exec backend runs as any user (the helper starts it)") {
    const ConfDir dir;
    const std::string_view server = "user = \"nobody\"\n";
    SUBCASE("another exec_user, another exec_group") {
        const Config c = require_config(dir.load(config(server, R"(
[[backend]]
name = "q"
exec = ["/bin/cat"]
exec_user = "root"

[[backend]]
name = "r"
exec = ["/bin/cat"]
exec_group = "root"
)")));
        CHECK(c.find_backend("q")->exec.uid == 0U);
        CHECK(c.find_backend("r")->exec.gid == 0U);
        CHECK(!c.find_backend("r")->exec.uid);
    }
    SUBCASE("server.user itself, or nothing: fine") {
        const Config c = require_config(dir.load(config(server, R"(
[[backend]]
name = "q"
exec = ["/bin/cat"]
exec_user = "nobody"

[[backend]]
name = "r"
exec = ["/bin/cat"]
)")));
        CHECK(c.find_backend("q")->exec.uid == 65534U);
    }
}

}  // namespace postern::conf::test
