#include "conf/load.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <sys/stat.h>

namespace postern::conf {

namespace fs = std::filesystem;
using test::ConfDir;
using test::contains;
using test::kValidHead;
using test::kValidListener;
using test::line_of;
using test::single_error;

namespace {

// kValidHead plus a listener whose body is `listener_body`.
std::string with_listener(std::string_view listener_body) {
    return std::string{kValidHead} + "\n[[listener]]\n" + std::string{listener_body};
}

}  // namespace

TEST_CASE("conf: a TOML syntax error reports toml++'s position and description") {
    const ConfDir dir;
    const std::string text = std::string{kValidHead} + "\n[[listener]]\nlisten = \n";
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.file == dir.config_file().string());
    CHECK(error.line == line_of(text, "listen = "));
    CHECK(error.column == 10);
    CHECK(error.key.empty());
    CHECK(contains(error.message, "TOML syntax error: "));
    CHECK(contains(error.message, "expected value"));
}

TEST_CASE("conf: an unknown key anywhere is reported with the keys allowed there") {
    const ConfDir dir;
    const std::string text = "servr = 1\n" + std::string{kValidHead} +
                             "tiemout = \"5s\"\n"  // lands in [[backend]]
                             + std::string{kValidListener} + "[listener.extra]\n";
    const LoadResult result = dir.load(text);
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.size() == 3);
    CHECK(result.errors[0].key == "servr");
    CHECK(result.errors[0].line == 1);
    CHECK(result.errors[0].message ==
          "unknown key \"servr\" (allowed: server, tls, certificate, backend, listener, metrics)");
    CHECK(result.errors[1].key == "backend[1].tiemout");
    CHECK(result.errors[1].line == line_of(text, "tiemout"));
    CHECK(contains(result.errors[1].message,
                   "(allowed: name, address, exec, exec_user, exec_group, exec_env, "
                   "send_proxy, xclient, connect_timeout)"));
    CHECK(result.errors[2].key == "listener[1].extra");
    CHECK(result.errors[2].line == line_of(text, "[listener.extra]"));
    CHECK(contains(result.errors[2].message,
                   "(allowed: listen, protocol, tls, backend, handshake_timeout, idle_timeout, "
                   "hostname, require_tls, submission, plaintext_timeout, max_errors, routes, "
                   "accept_proxy, trusted_proxies, max_sessions_per_client, "
                   "max_new_per_client)"));
}

TEST_CASE("conf: a value of the wrong type names the type expected and the one found") {
    const ConfDir dir;
    const std::string text = "[server]\nlog_level = 3\n[tls]\nstrict_sni = \"yes\"\n";
    const LoadResult result = dir.load(text);
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.size() == 2);
    CHECK(result.errors[0].key == "server.log_level");
    CHECK(result.errors[0].line == 2);
    CHECK(result.errors[0].column == 13);
    CHECK(result.errors[0].message ==
          "expected a string (put the value in quotes), got an integer");
    CHECK(result.errors[1].key == "tls.strict_sni");
    CHECK(result.errors[1].line == 4);
    CHECK(result.errors[1].message == "expected a boolean (true or false), got a string");

    SUBCASE("min_version written as a number") {
        const ConfigError error = single_error(dir.load("[tls]\nmin_version = 1.2\n"));
        CHECK(error.key == "tls.min_version");
        CHECK(error.message ==
              "expected a string (put the value in quotes), got a "
              "floating-point number");
    }
    SUBCASE("a section that is not a table") {
        const ConfigError error = single_error(dir.load("tls = \"1.2\"\n"));
        CHECK(error.key == "tls");
        CHECK(error.message == "expected a table ([tls]), got a string");
    }
    SUBCASE("[listener] instead of [[listener]]") {
        const ConfigError error = single_error(dir.load("\n[listener]\nlisten = \"a:1\"\n"));
        CHECK(error.key == "listener");
        CHECK(error.line == 2);
        CHECK(error.message == "expected an array of tables ([[listener]]), got a table");
    }
    SUBCASE("an array element that is not a table") {
        const ConfigError error = single_error(dir.load("backend = [\"imap\"]\n"));
        CHECK(error.key == "backend[1]");
        CHECK(error.message == "expected a table ([[backend]]), got a string");
    }
}

TEST_CASE("conf: each missing required key is reported at its table's line") {
    const ConfDir dir;
    struct Row {
        std::string text;
        std::string key;
        std::string table_header;
    };
    const auto rows = std::to_array<Row>({
        {"[[certificate]]\nkey = \"key.pem\"\n", "certificate[1].cert", "[[certificate]]"},
        {"[[certificate]]\ncert = \"cert.pem\"\n", "certificate[1].key", "[[certificate]]"},
        {"[[backend]]\naddress = \"127.0.0.1:143\"\n", "backend[1].name", "[[backend]]"},
        {"[[backend]]\nname = \"imap\"\n", "backend[1].address", "[[backend]]"},
        {with_listener("protocol = \"imap\"\nbackend = \"imap\"\n"), "listener[1].listen",
         "[[listener]]"},
        {with_listener("listen = \"127.0.0.1:993\"\nbackend = \"imap\"\n"), "listener[1].protocol",
         "[[listener]]"},
        {with_listener("listen = \"127.0.0.1:993\"\nprotocol = \"imap\"\n"), "listener[1].backend",
         "[[listener]]"},
    });
    for (const Row& row : rows) {
        CAPTURE(row.key);
        const ConfigError error = single_error(dir.load("\n" + row.text));
        CHECK(error.key == row.key);
        CHECK(error.line == line_of("\n" + row.text, row.table_header));
        const std::string leaf = row.key.substr(row.key.rfind('.') + 1);
        CHECK(error.message.starts_with("missing required key \"" + leaf + "\""));
    }
}

TEST_CASE("conf: an unknown protocol lists the accepted ones") {
    const ConfDir dir;
    const std::string text =
        with_listener("listen = \"127.0.0.1:993\"\nprotocol = \"imaps\"\nbackend = \"imap\"\n");
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "listener[1].protocol");
    CHECK(error.line == line_of(text, "imaps"));
    CHECK(error.message == "unknown protocol \"imaps\" (accepted: imap, pop3, smtp)");
}

TEST_CASE("conf: an unknown tls mode lists the accepted ones") {
    const ConfDir dir;
    const std::string text = with_listener(
        "listen = \"127.0.0.1:993\"\nprotocol = \"imap\"\ntls = \"ssl\"\nbackend = \"imap\"\n");
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "listener[1].tls");
    CHECK(error.line == line_of(text, "\"ssl\""));
    CHECK(error.message == "unknown tls mode \"ssl\" (accepted: implicit, starttls)");
}

TEST_CASE("conf: an unknown min_version lists the accepted ones") {
    const ConfDir dir;
    const ConfigError error = single_error(dir.load("[tls]\nmin_version = \"1.1\"\n"));
    CHECK(error.key == "tls.min_version");
    CHECK(error.line == 2);
    CHECK(error.message == "unknown min_version \"1.1\" (accepted: 1.2, 1.3)");
}

TEST_CASE("conf: an unknown log_level lists the accepted ones") {
    const ConfDir dir;
    const ConfigError error = single_error(dir.load("\n[server]\nlog_level = \"verbose\"\n"));
    CHECK(error.key == "server.log_level");
    CHECK(error.line == 3);
    CHECK(error.message ==
          "unknown log_level \"verbose\" (accepted: trace, debug, info, warn, error)");
}

TEST_CASE("conf: an unknown log_format is reported at its key, line and column") {
    const ConfDir dir;
    const ConfigError error = single_error(dir.load("\n[server]\nlog_format = \"xml\"\n"));
    CHECK(error.key == "server.log_format");
    CHECK(error.line == 3);
    CHECK(error.column == 14);
    CHECK(error.message == "unknown log_format \"xml\" (accepted: text, json)");
}

TEST_CASE("conf: a bad host:port is reported at its key and line") {
    const ConfDir dir;
    struct Row {
        std::string_view listen;
        std::string_view reason;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"127.0.0.1", "no port"},
        {"127.0.0.1:0", "port 0 is not allowed"},
        {"127.0.0.1:65536", "out of range (1-65535)"},
        {":993", "empty host"},
        {"[::1:993", "'[' without a matching ']'"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.listen);
        const std::string text =
            with_listener("protocol = \"imap\"\nlisten = \"" + std::string{row.listen} +
                          "\"\nbackend = \"imap\"\n");
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "listener[1].listen");
        CHECK(error.line == line_of(text, "listen ="));
        CHECK(contains(error.message, "invalid address \"" + std::string{row.listen} + "\""));
        CHECK(contains(error.message, row.reason));
    }
    SUBCASE("in a backend too") {
        const std::string text = "[[backend]]\nname = \"b\"\naddress = \"127.0.0.1:99999\"\n";
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "backend[1].address");
        CHECK(error.line == 3);
    }
}

TEST_CASE("conf: a missing cert file names the resolved path and the OS error") {
    const ConfDir dir;
    const std::string text = "[[certificate]]\ncert = \"certs/nope.pem\"\nkey = \"key.pem\"\n";
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "certificate[1].cert");
    CHECK(error.line == 2);
    const std::string resolved = (dir.path() / "certs" / "nope.pem").string();
    CHECK(error.message == "cannot read \"" + resolved + "\": No such file or directory");
}

TEST_CASE("conf: an unreadable key file names the resolved path and the OS error") {
    const ConfDir dir;
    fs::create_directory(dir.path() / "keydir");
    const std::string text = "[[certificate]]\ncert = \"cert.pem\"\nkey = \"keydir\"\n";
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "certificate[1].key");
    CHECK(error.line == 3);
    CHECK(error.message ==
          "cannot read \"" + (dir.path() / "keydir").string() + "\": Is a directory");

    // A FIFO would block the loader's open until a writer came along.
    REQUIRE(::mkfifo((dir.path() / "keyfifo").c_str(), 0600) == 0);
    const ConfigError fifo =
        single_error(dir.load("[[certificate]]\ncert = \"cert.pem\"\nkey = \"keyfifo\"\n"));
    CHECK(fifo.key == "certificate[1].key");
    CHECK(contains(fifo.message, "keyfifo\": not a regular file"));
}

TEST_CASE("conf: a duplicate listen address names the first listener and its line") {
    const ConfDir dir;
    const std::string text = std::string{kValidHead} + std::string{kValidListener} + R"(
[[listener]]
listen = "127.0.0.1:995"
protocol = "pop3"
backend = "imap"

[[listener]]
listen = "127.0.0.1:993"  # same as listener[1]
protocol = "imap"
backend = "imap"
)";
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "listener[3].listen");
    CHECK(error.line == line_of(text, "# same as"));
    CHECK(error.message ==
          "listen address 127.0.0.1:993 is already used by listener[1].listen "
          "on line " +
              std::to_string(line_of(text, "127.0.0.1:993")));
}

TEST_CASE("conf: listen addresses that would take the same clients on a port are refused") {
    // One bind refuses the second; with several workers SO_REUSEPORT would let it through.
    const ConfDir dir;
    const std::string text = std::string{kValidHead} + std::string{kValidListener} + R"(
[[listener]]
listen = "[::]:993"  # dual-stack: IPv4 clients too
protocol = "imap"
backend = "imap"

[[listener]]
listen = "0.0.0.0:995"
protocol = "pop3"
backend = "imap"

[[listener]]
listen = "192.0.2.7:995"  # inside 0.0.0.0
protocol = "pop3"
backend = "imap"

[[listener]]
listen = "[::1]:995"  # IPv6 only: beside 0.0.0.0, fine
protocol = "pop3"
backend = "imap"

[[listener]]
listen = "[2001:db8::1]:110"
protocol = "pop3"
backend = "imap"

[[listener]]
listen = "192.0.2.7:110"  # other family, specific: fine
protocol = "pop3"
backend = "imap"
)";
    const LoadResult result = dir.load(text);
    REQUIRE_FALSE(result.config);
    REQUIRE(result.errors.size() == 2);
    CHECK(result.errors[0].key == "listener[2].listen");
    CHECK(result.errors[0].line == line_of(text, "# dual-stack"));
    CHECK(result.errors[0].message ==
          "listen address [::]:993 overlaps 127.0.0.1:993 of listener[1].listen on line " +
              std::to_string(line_of(text, "127.0.0.1:993")) +
              ": [::] takes IPv4 clients too, so both would accept the same clients on port "
              "993; use one, or another port");
    CHECK(result.errors[1].key == "listener[4].listen");
    CHECK(contains(result.errors[1].message, "overlaps 0.0.0.0:995 of listener[3].listen"));
    CHECK(contains(result.errors[1].message, "0.0.0.0 takes every IPv4 address"));
}

TEST_CASE("conf: a duplicate backend name names the first definition and its line") {
    const ConfDir dir;
    const std::string text =
        std::string{kValidHead} + "\n[[backend]]\nname = \"imap\"\naddress = \"127.0.0.1:1143\"\n";
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "backend[2].name");
    CHECK(error.line == line_of(text, "1143") - 1);
    CHECK(error.message ==
          "duplicate backend name \"imap\" (first defined by backend[1].name on "
          "line " +
              std::to_string(line_of(text, "name = \"imap\"")) + ")");
}

TEST_CASE("conf: a listener naming no backend lists the backends that exist") {
    const ConfDir dir;
    const std::string text = std::string{kValidHead} +
                             "\n[[backend]]\nname = \"pop3\"\naddress = \"127.0.0.1:110\"\n" +
                             "\n[[listener]]\nlisten = \"127.0.0.1:993\"\nprotocol = \"imap\"\n"
                             "backend = \"imapx\"\n";
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "listener[1].backend");
    CHECK(error.line == line_of(text, "imapx"));
    CHECK(error.message == "no backend named \"imapx\" (have: imap, pop3)");

    const std::string no_backends =
        "[tls]\ndefault_certificate = \"a.example\"\n"
        "[[certificate]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n" +
        std::string{kValidListener};
    const ConfigError none = single_error(dir.load(no_backends));
    CHECK(none.key == "listener[1].backend");
    CHECK(none.message == "no backend named \"imap\" (no [[backend]] is defined)");
}

TEST_CASE("conf: listeners without a default_certificate are refused") {
    const ConfDir dir;
    SUBCASE("with a [tls] table: reported there") {
        const std::string text =
            "[tls]\nstrict_sni = true\n" +
            std::string{kValidHead}.substr(std::string_view{kValidHead}.find("[[certificate]]")) +
            std::string{kValidListener};
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "tls.default_certificate");
        CHECK(error.line == 1);
        CHECK(contains(error.message, "missing required key \"default_certificate\""));
    }
    SUBCASE("without one: reported at the first listener") {
        const std::string text =
            std::string{kValidHead}.substr(std::string_view{kValidHead}.find("[[certificate]]")) +
            std::string{kValidListener};
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "tls.default_certificate");
        CHECK(error.line == line_of(text, "[[listener]]"));
    }
}

TEST_CASE("conf: a default_certificate that is not a DNS name is refused") {
    const ConfDir dir;
    const ConfigError error =
        single_error(dir.load("[tls]\ndefault_certificate = \"*.example\"\n"));
    CHECK(error.key == "tls.default_certificate");
    CHECK(error.line == 2);
    CHECK(contains(error.message, "\"*.example\" is not a DNS name"));
}

TEST_CASE("conf: listeners without any certificate are refused") {
    const ConfDir dir;
    const std::string text =
        "[tls]\ndefault_certificate = \"mail.example.net\"\n"
        "[[backend]]\nname = \"imap\"\naddress = \"127.0.0.1:143\"\n" +
        std::string{kValidListener};
    const ConfigError error = single_error(dir.load(text));
    CHECK(error.key == "certificate");
    CHECK(error.line == line_of(text, "[[listener]]"));
    CHECK(error.message ==
          "no [[certificate]] and no tls.certificates_dir is defined; a [[listener]] needs at "
          "least one certificate");
}

TEST_CASE("conf: an invalid duration is reported at its key and line") {
    const ConfDir dir;
    struct Row {
        std::string_view value;
        std::string_view message;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"\"30sec\"",
         "invalid duration \"30sec\": expected a whole number followed by ms, s, m or h, e.g. "
         "250ms, 30s, 5m, 1h"},
        {"\"0s\"", "invalid duration \"0s\": must be greater than 0"},
        {"0", "invalid duration 0: must be greater than 0"},
        {"-5", "invalid duration -5: must be greater than 0"},
        {"1.5",
         "expected a duration such as \"30s\" or a whole number of seconds, got a "
         "floating-point number"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.value);
        const std::string text = with_listener(
            "listen = \"127.0.0.1:993\"\nprotocol = \"imap\"\nbackend = \"imap\"\n"
            "idle_timeout = " +
            std::string{row.value} + "\n");
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "listener[1].idle_timeout");
        CHECK(error.line == line_of(text, "idle_timeout"));
        CHECK(error.message == row.message);
    }
}

}  // namespace postern::conf
