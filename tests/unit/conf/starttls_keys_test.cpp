// The keys the STARTTLS listeners and postern's own greetings need: server.hostname,
// server.workers, and listener[].hostname, require_tls, submission, plaintext_timeout and
// max_errors. Defaults, the require_tls default by protocol, and each located error.

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
using test::contains;
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

// kValidHead plus one listener on 127.0.0.1:143 with these lines added to it.
std::string listener_with(std::string_view protocol, std::string_view extra) {
    return std::string{kValidHead} + "\n[[listener]]\nlisten = \"127.0.0.1:143\"\nprotocol = \"" +
           std::string{protocol} + "\"\nbackend = \"imap\"\n" + std::string{extra};
}

}  // namespace

TEST_CASE("conf: the STARTTLS and greeting keys take their defaults when omitted") {
    const ConfDir dir;
    const Config config =
        require_config(dir.load(std::string{kValidHead} + std::string{kValidListener}));
    CHECK(config.server.hostname.empty());
    CHECK(config.server.workers == 1);
    const ListenerSpec& listener = config.listeners.at(0);
    CHECK(listener.hostname.empty());
    CHECK(listener.require_tls);  // implicit TLS: always
    CHECK_FALSE(listener.submission);
    CHECK(listener.plaintext_timeout == 60s);
    CHECK(listener.max_errors == 10);
}

TEST_CASE("conf: require_tls defaults by protocol, submission and tls mode") {
    const ConfDir dir;
    struct Row {
        std::string_view protocol;
        std::string_view extra;
        bool require_tls;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"imap", "tls = \"starttls\"\n", true},
        {"pop3", "tls = \"starttls\"\n", true},
        {"smtp", "tls = \"starttls\"\n", false},  // port 25: RFC 3207 4
        {"smtp", "tls = \"starttls\"\nsubmission = false\n", false},
        {"smtp", "tls = \"starttls\"\nsubmission = true\n", true},  // port 587
        {"smtp", "", true},                                         // implicit (465)
        {"smtp", "submission = true\n", true},
        {"imap", "", true},
        // An explicit value wins over the default.
        {"smtp", "tls = \"starttls\"\nrequire_tls = true\n", true},
        {"smtp", "tls = \"starttls\"\nsubmission = true\nrequire_tls = false\n", false},
        {"imap", "tls = \"starttls\"\nrequire_tls = false\n", false},
        {"pop3", "tls = \"starttls\"\nrequire_tls = false\n", false},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.protocol);
        CAPTURE(row.extra);
        const Config config = require_config(dir.load(listener_with(row.protocol, row.extra)));
        CHECK(config.listeners.at(0).require_tls == row.require_tls);
    }
}

TEST_CASE("conf: the STARTTLS and greeting keys load as written") {
    const ConfDir dir;
    const std::string text = "[server]\nhostname = \"Mail.Example.NET\"\nworkers = 0\n" +
                             listener_with("smtp",
                                           "tls = \"starttls\"\nsubmission = true\n"
                                           "hostname = \"smtp-1.example.net\"\n"
                                           "plaintext_timeout = \"90s\"\nmax_errors = 1000\n") +
                             "\n[[listener]]\nlisten = \"127.0.0.1:110\"\nprotocol = \"pop3\"\n"
                             "tls = \"starttls\"\nbackend = \"imap\"\nplaintext_timeout = 5\n"
                             "max_errors = 1\n";
    const Config config = require_config(dir.load(text));
    CHECK(config.server.hostname == "Mail.Example.NET");  // a greeting keeps its spelling
    CHECK(config.server.workers == 0);
    REQUIRE(config.listeners.size() == 2);
    const ListenerSpec& smtp = config.listeners[0];
    CHECK(smtp.hostname == "smtp-1.example.net");
    CHECK(smtp.submission);
    CHECK(smtp.require_tls);
    CHECK(smtp.plaintext_timeout == 90s);
    CHECK(smtp.max_errors == 1000);
    const ListenerSpec& pop3 = config.listeners[1];
    CHECK(pop3.hostname.empty());  // inherits server.hostname
    CHECK(pop3.plaintext_timeout == 5s);
    CHECK(pop3.max_errors == 1);

    SUBCASE("workers up to 256") {
        CHECK(require_config(dir.load("[server]\nworkers = 256\n")).server.workers == 256);
    }
}

TEST_CASE("conf: a server hostname or worker count out of bounds is reported at its line") {
    const ConfDir dir;
    struct Row {
        std::string_view line;
        std::string_view key;
        std::string_view message;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"hostname = \"mail example\"", "server.hostname",
         "\"mail example\" is not a DNS name (letters, digits and hyphens in dot-separated "
         "labels, e.g. mail.example.net)"},
        {"hostname = \"mail.example.net.\"", "server.hostname",
         "\"mail.example.net.\" is not a DNS name (letters, digits and hyphens in dot-separated "
         "labels, e.g. mail.example.net)"},
        {"hostname = \"\"", "server.hostname", "must not be empty"},
        {"hostname = 1", "server.hostname",
         "expected a string (put the value in quotes), got an integer"},
        {"workers = 257", "server.workers", "257 is out of range (0 to 256)"},
        {"workers = -1", "server.workers", "-1 is out of range (0 to 256)"},
        {"workers = \"4\"", "server.workers",
         "expected a whole number from 0 to 256, got a string"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.line);
        const std::string text = "[server]\n" + std::string{row.line} + "\n";
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == row.key);
        CHECK(error.line == 2);
        CHECK(error.message == row.message);
    }
}

TEST_CASE("conf: a bad listener hostname or max_errors is reported at its line") {
    const ConfDir dir;
    struct Row {
        std::string_view line;
        std::string_view key;
        std::string_view message;
    };
    constexpr auto kRows = std::to_array<Row>({
        {"hostname = \"*.example.net\"", "listener[1].hostname",
         "\"*.example.net\" is not a DNS name (letters, digits and hyphens in dot-separated "
         "labels, e.g. mail.example.net)"},
        {"max_errors = 0", "listener[1].max_errors", "0 is out of range (1 to 1000)"},
        {"max_errors = 1001", "listener[1].max_errors", "1001 is out of range (1 to 1000)"},
        {"plaintext_timeout = \"0s\"", "listener[1].plaintext_timeout",
         "invalid duration \"0s\": must be greater than 0"},
        {"require_tls = \"yes\"", "listener[1].require_tls",
         "expected a boolean (true or false), got a string"},
        {"submission = 1", "listener[1].submission",
         "expected a boolean (true or false), got an integer"},
    });
    for (const Row& row : kRows) {
        CAPTURE(row.line);
        const std::string text =
            listener_with("smtp", "tls = \"starttls\"\n" + std::string{row.line} + "\n");
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == row.key);
        CHECK(error.line == line_of(text, row.line));
        CHECK(error.message == row.message);
    }
}

TEST_CASE("conf: require_tls and plaintext_timeout are refused on implicit-TLS listeners") {
    const ConfDir dir;
    // Whether tls = "implicit" is written or left to its default.
    constexpr auto kModes = std::to_array<std::string_view>({"", "tls = \"implicit\"\n"});
    SUBCASE("require_tls") {
        for (const std::string_view mode : kModes) {
            CAPTURE(mode);
            const std::string text =
                listener_with("imap", std::string{mode} + "require_tls = true\n");
            const ConfigError error = single_error(dir.load(text));
            CHECK(error.key == "listener[1].require_tls");
            CHECK(error.line == line_of(text, "require_tls"));
            CHECK(error.message ==
                  "require_tls only applies to starttls listeners; with tls = \"implicit\" TLS "
                  "is always required");
        }
    }
    SUBCASE("plaintext_timeout") {
        for (const std::string_view mode : kModes) {
            CAPTURE(mode);
            const std::string text =
                listener_with("smtp", std::string{mode} + "plaintext_timeout = \"30s\"\n");
            const ConfigError error = single_error(dir.load(text));
            CHECK(error.key == "listener[1].plaintext_timeout");
            CHECK(error.line == line_of(text, "plaintext_timeout"));
            CHECK(error.message ==
                  "plaintext_timeout only applies to starttls listeners; with tls = "
                  "\"implicit\" handshake_timeout limits the time before TLS");
        }
    }
}

TEST_CASE("conf: submission is refused on imap and pop3 listeners") {
    const ConfDir dir;
    for (const std::string_view protocol : {"imap", "pop3"}) {
        CAPTURE(protocol);
        const std::string text =
            listener_with(protocol, "tls = \"starttls\"\nsubmission = false\n");
        const ConfigError error = single_error(dir.load(text));
        CHECK(error.key == "listener[1].submission");
        CHECK(error.line == line_of(text, "submission"));
        CHECK(error.message == "submission only applies to smtp listeners (this one is " +
                                   std::string{protocol} + ")");
    }
}

TEST_CASE("conf: a bad protocol or tls mode is not reported again through these keys") {
    const ConfDir dir;
    SUBCASE("unknown protocol with submission") {
        const ConfigError error =
            single_error(dir.load(listener_with("gopher", "submission = true\n")));
        CHECK(error.key == "listener[1].protocol");
    }
    SUBCASE("unknown tls mode with require_tls and plaintext_timeout") {
        const ConfigError error = single_error(dir.load(listener_with(
            "imap", "tls = \"sometimes\"\nrequire_tls = true\nplaintext_timeout = \"5s\"\n")));
        CHECK(error.key == "listener[1].tls");
        CHECK(contains(error.message, "unknown tls mode \"sometimes\""));
    }
}

}  // namespace postern::conf
