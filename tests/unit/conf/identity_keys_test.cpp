// The keys of client identity and routing: backend address lists, exec programs, send_proxy and
// xclient; listener routes, accept_proxy and trusted_proxies. What loads, what each mistake
// says, and where.
#include "conf/parse_value.hpp"
#include "conf_test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace postern::conf::test {
namespace {

using namespace std::chrono_literals;

// kValidHead's certificate and "imap" backend, then `backends`, then one listener with `extra`.
std::string config(std::string_view backends, std::string_view extra = {}) {
    return std::string{kValidHead} + std::string{backends} + std::string{kValidListener} +
           std::string{extra};
}

bool network_has(const Network& n, const char* address) {
    std::array<std::uint8_t, 16> bytes{};
    if (inet_pton(AF_INET, address, bytes.data()) == 1) {
        return n.contains(4, bytes.data());
    }
    REQUIRE(inet_pton(AF_INET6, address, bytes.data()) == 1);
    return n.contains(6, bytes.data());
}

}  // namespace

TEST_CASE("conf: a backend takes one address or a list tried in order") {
    const ConfDir dir;
    const LoadResult result = dir.load(config(
        "[[backend]]\nname = \"pair\"\naddress = [\"10.0.0.5:143\", \"[2001:db8::6]:143\"]\n"));
    INFO(format_errors(result.errors));
    REQUIRE(result.config.has_value());
    const BackendSpec* pair = result.config->find_backend("pair");
    REQUIRE(pair != nullptr);
    REQUIRE(pair->addresses.size() == 2);
    CHECK(pair->addresses[0].to_string() == "10.0.0.5:143");
    CHECK(pair->addresses[1].to_string() == "[2001:db8::6]:143");
    CHECK_FALSE(pair->is_exec());
    CHECK(std::string{pair->identity()} == "none");
    CHECK(result.config->find_backend("imap")->addresses.size() == 1);
}

TEST_CASE("conf: send_proxy and xclient say how the backend learns the client") {
    const ConfDir dir;
    const LoadResult result = dir.load(config(R"(
[[backend]]
name = "v2"
address = "127.0.0.1:1"
send_proxy = "v2"
[[backend]]
name = "v1"
address = "127.0.0.1:2"
send_proxy = "v1"
[[backend]]
name = "x"
address = "127.0.0.1:3"
xclient = true
)"));
    INFO(format_errors(result.errors));
    REQUIRE(result.config.has_value());
    CHECK(std::string{result.config->find_backend("v2")->identity()} == "proxy-v2");
    CHECK(std::string{result.config->find_backend("v1")->identity()} == "proxy-v1");
    CHECK(std::string{result.config->find_backend("x")->identity()} == "xclient");
}

TEST_CASE("conf: an exec backend runs a program with extra environment") {
    const ConfDir dir;
    const LoadResult result = dir.load(config(R"(
[[backend]]
name = "qmail"
exec = ["/bin/cat", "-u"]
exec_env = { DATABYTES = "20000000", PATH = "/usr/local/bin:/usr/bin:/bin" }
)"));
    INFO(format_errors(result.errors));
    REQUIRE(result.config.has_value());
    const BackendSpec* qmail = result.config->find_backend("qmail");
    REQUIRE(qmail != nullptr);
    CHECK(qmail->is_exec());
    CHECK(qmail->addresses.empty());
    CHECK(qmail->exec.argv == std::vector<std::string>{"/bin/cat", "-u"});
    REQUIRE(qmail->exec.env.size() == 2);
    CHECK(qmail->exec.env[0] == std::pair<std::string, std::string>{"DATABYTES", "20000000"});
    CHECK_FALSE(qmail->exec.uid.has_value());
    CHECK(std::string{qmail->identity()} == "exec");
}

TEST_CASE("conf: exec_user and exec_group resolve to ids at load") {
    const ConfDir dir;
    const LoadResult result = dir.load(config(R"(
[[backend]]
name = "q"
exec = ["/bin/cat"]
exec_user = "root"
exec_group = "nogroup"
)"));
    INFO(format_errors(result.errors));
    REQUIRE(result.config.has_value());
    const ExecSpec& exec = result.config->find_backend("q")->exec;
    CHECK(exec.uid == 0U);
    CHECK(exec.gid == 65534U);
}

TEST_CASE("conf: each backend mistake names its key") {
    const ConfDir dir;
    struct Row {
        std::string_view backend;
        std::string_view key;
        std::string_view says;
    };
    const std::vector<Row> rows = {
        {"address = \"127.0.0.1:1\"\nexec = [\"/bin/cat\"]\n", "backend[2].exec",
         "exec and address exclude each other"},
        {"", "backend[2].address", "(or \"exec\": a program run per session)"},
        {"address = []\n", "backend[2].address", "a non-empty list of strings"},
        {"address = [\"127.0.0.1:1\", 5]\n", "backend[2].address[2]", "expected a string"},
        {"address = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n", "backend[2].address[2]",
         "already in the list"},
        {"address = [\"127.0.0.1:0\"]\n", "backend[2].address[1]", "port 0"},
        {"exec = [\"cat\"]\n", "backend[2].exec[1]", "not an absolute path"},
        {"exec = [\"/nonexistent/qmail-smtpd\"]\n", "backend[2].exec[1]",
         "No such file or directory"},
        {"exec = [\"/bin/cat\"]\nsend_proxy = \"v2\"\n", "backend[2].send_proxy",
         "does not apply to an exec backend"},
        {"exec = [\"/bin/cat\"]\nconnect_timeout = \"5s\"\n", "backend[2].connect_timeout",
         "does not apply to an exec backend"},
        {"address = \"127.0.0.1:1\"\nexec_user = \"root\"\n", "backend[2].exec_user",
         "only applies to an exec backend"},
        {"exec = [\"/bin/cat\"]\nexec_user = \"no-such-user-here\"\n", "backend[2].exec_user",
         "no user named"},
        {"exec = [\"/bin/cat\"]\nexec_group = \"no-such-group-here\"\n", "backend[2].exec_group",
         "no group named"},
        {"exec = [\"/bin/cat\"]\nexec_env = { TCPREMOTEIP = \"1.2.3.4\" }\n",
         "backend[2].exec_env.\"TCPREMOTEIP\"", "postern sets TCPREMOTEIP itself"},
        {"exec = [\"/bin/cat\"]\nexec_env = { \"A-B\" = \"x\" }\n", "backend[2].exec_env.\"A-B\"",
         "not an environment variable name"},
        {"exec = [\"/bin/cat\"]\nexec_env = { A = 1 }\n", "backend[2].exec_env.\"A\"",
         "expected a string"},
        {"address = \"127.0.0.1:1\"\nsend_proxy = \"v3\"\n", "backend[2].send_proxy",
         "(accepted: v1, v2)"},
        {"address = \"127.0.0.1:1\"\nsend_proxy = \"v2\"\nxclient = true\n", "backend[2].xclient",
         "choose one"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.backend);
        const std::string text = config("[[backend]]\nname = \"b\"\n" + std::string{row.backend});
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == row.key);
        CHECK(contains(error.message, row.says));
        CHECK(error.line >= line_of(text, "name = \"b\"") - 1);  // the table or a key of it
    }
}

TEST_CASE("conf: routes pick a backend by SNI: exact name, then one label up, else the default") {
    const ConfDir dir;
    const LoadResult result = dir.load(config(
        "[[backend]]\nname = \"alpha\"\naddress = \"127.0.0.1:1\"\n"
        "[[backend]]\nname = \"beta\"\naddress = \"127.0.0.1:2\"\n",
        "routes = { \"Mail.Alpha.Example.\" = \"alpha\", \"*.beta.example\" = \"beta\" }\n"));
    INFO(format_errors(result.errors));
    REQUIRE(result.config.has_value());
    const ListenerSpec& l = result.config->listeners.at(0);
    REQUIRE(l.routes.size() == 2);
    CHECK(l.routes[0].server_name == "*.beta.example");  // sorted, lower case, no trailing dot
    CHECK(l.routes[1].server_name == "mail.alpha.example");
    CHECK(Config::route(l, "mail.alpha.example") == "alpha");
    CHECK(Config::route(l, "x.beta.example") == "beta");
    CHECK(Config::route(l, "a.x.beta.example") == "imap");  // one label only
    CHECK(Config::route(l, "beta.example") == "imap");      // the wildcard is not the apex
    CHECK(Config::route(l, "other.example") == "imap");
    CHECK(Config::route(l, "") == "imap");  // no SNI, or no TLS
}

TEST_CASE("conf: each route mistake names the route") {
    const ConfDir dir;
    struct Row {
        std::string_view routes;
        std::string_view key;
        std::string_view says;
    };
    const std::vector<Row> rows = {
        {R"({ "mail.a.example" = "nope" })", R"(listener[1].routes."mail.a.example")",
         R"(no backend named "nope" (have: imap))"},
        {R"({ "mail_a.example" = "imap" })", R"(listener[1].routes."mail_a.example")",
         "is not a server name"},
        {R"({ "*.*.example" = "imap" })", R"(listener[1].routes."*.*.example")",
         "is not a server name"},
        {R"({ "a.example" = "imap", "A.example" = "imap" })", R"(listener[1].routes."a.example")",
         "the same server name"},
        {"\"imap\"", "listener[1].routes", "expected a table"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.routes);
        const std::string text = config("", "routes = " + std::string{row.routes} + "\n");
        const LoadResult result = dir.load(text);
        INFO(format_errors(result.errors));
        REQUIRE_FALSE(result.errors.empty());
        CHECK(result.errors[0].key == row.key);
        CHECK(contains(result.errors[0].message, row.says));
        CHECK(result.errors[0].line == line_of(text, "routes ="));
    }
}

TEST_CASE("conf: accept_proxy takes PROXY headers from trusted_proxies only") {
    const ConfDir dir;
    const LoadResult result = dir.load(config(
        "", "accept_proxy = true\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]\n"));
    INFO(format_errors(result.errors));
    REQUIRE(result.config.has_value());
    const ListenerSpec& l = result.config->listeners.at(0);
    CHECK(l.accept_proxy);
    REQUIRE(l.trusted_proxies.size() == 3);
    CHECK(network_has(l.trusted_proxies[0], "10.200.3.4"));
    CHECK_FALSE(network_has(l.trusted_proxies[0], "11.0.0.1"));
    CHECK(network_has(l.trusted_proxies[1], "192.0.2.7"));
    CHECK_FALSE(network_has(l.trusted_proxies[1], "192.0.2.8"));
    CHECK(network_has(l.trusted_proxies[0], "::ffff:10.1.2.3"));  // a dual-stack listener's view
    CHECK(network_has(l.trusted_proxies[2], "::1"));
    CHECK_FALSE(network_has(l.trusted_proxies[2], "127.0.0.1"));

    const std::string missing = config("", "accept_proxy = true\n");
    const ConfigError no_list = single_error(dir.load(missing));
    CHECK(no_list.key == "listener[1].accept_proxy");
    CHECK(contains(no_list.message, "accept_proxy needs trusted_proxies"));

    const std::string unused = config("", "trusted_proxies = [\"10.0.0.1\"]\n");
    const ConfigError stray = single_error(dir.load(unused));
    CHECK(stray.key == "listener[1].trusted_proxies");
    CHECK(contains(stray.message, "only applies with accept_proxy = true"));

    const std::string bad = config("", "accept_proxy = true\ntrusted_proxies = [\"10.0.0.1/8\"]\n");
    const ConfigError host_bits = single_error(dir.load(bad));
    CHECK(host_bits.key == "listener[1].trusted_proxies[1]");
    CHECK(contains(host_bits.message, "the network is 10.0.0.0/8, one address is 10.0.0.1"));
}

TEST_CASE("conf: networks parse as an address or CIDR; anything else says what to write") {
    struct Row {
        std::string_view text;
        std::string_view shown;
    };
    for (const Row row : {Row{"10.0.0.0/8", "10.0.0.0/8"}, Row{"192.0.2.7", "192.0.2.7/32"},
                          Row{"0.0.0.0/0", "0.0.0.0/0"}, Row{"2001:db8::/32", "2001:db8::/32"},
                          Row{"::1", "::1/128"}, Row{"10.1.2.128/25", "10.1.2.128/25"}}) {
        CAPTURE(row.text);
        const Parsed<Network> parsed = parse_network(row.text);
        REQUIRE(parsed.value.has_value());
        CHECK(parsed.value->to_string() == row.shown);
    }
    for (const std::string_view bad :
         {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "mail.example", "[::1]", "10.0.0.0/8/8",
          "2001:db8::/129", "10.0.0.1/24", ""}) {
        CAPTURE(bad);
        const Parsed<Network> parsed = parse_network(bad);
        CHECK_FALSE(parsed.value.has_value());
        CHECK(contains(parsed.error, "is not an address or network"));
    }
    const Parsed<Network> half = parse_network("10.1.2.130/25");
    CHECK(contains(half.error, "the network is 10.1.2.128/25"));
    const Network n = *parse_network("10.1.2.128/25").value;
    CHECK(network_has(n, "10.1.2.255"));
    CHECK_FALSE(network_has(n, "10.1.2.127"));
}

}  // namespace postern::conf::test
