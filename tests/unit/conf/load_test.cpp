#include "conf/load.hpp"

#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace postern::conf {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ConfDir;
using test::kValidHead;
using test::kValidListener;
using test::line_of;
using test::TempDir;

namespace {

std::string read_example() {
    const fs::path example = fs::path{POSTERN_SOURCE_DIR} / "conf" / "postern.example.toml";
    std::ifstream in{example, std::ios::binary};
    REQUIRE_MESSAGE(in.good(), "cannot open " << example);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

Config require_config(const LoadResult& result) {
    INFO(format_errors(result.errors));
    REQUIRE(result.errors.empty());
    REQUIRE(result.config.has_value());
    return *result.config;
}

}  // namespace

TEST_CASE("conf: the annotated example file loads with every key applied") {
    const TempDir dir;
    const std::string text = read_example();
    const fs::path file = dir.write("postern.toml", text);
    for (const char* domain : {"example.net", "example.org"}) {
        dir.write(fs::path{"certs"} / domain / "fullchain.pem", "dummy\n");
        dir.write(fs::path{"certs"} / domain / "privkey.pem", "dummy\n");
    }

    const Config config = require_config(load_config(file));

    CHECK(config.file == file);
    CHECK(config.server.log_level == "info");
    CHECK(config.server.hostname.empty());
    CHECK(config.server.workers == 1);
    CHECK(config.tls.min_version == TlsVersion::Tls12);
    CHECK(config.tls.default_certificate == "mail.example.net");
    CHECK(config.tls.default_certificate_at.line == line_of(text, "default_certificate ="));
    CHECK_FALSE(config.tls.strict_sni);

    REQUIRE(config.certificates.size() == 2);
    CHECK(config.certificates[0].cert == dir.path() / "certs/example.net/fullchain.pem");
    CHECK(config.certificates[0].key == dir.path() / "certs/example.net/privkey.pem");
    CHECK(config.certificates[1].key_name == "certificate[2]");
    CHECK(config.certificates[0].at.line == line_of(text, "\n[[certificate]]\n") + 1);

    REQUIRE(config.backends.size() == 3);
    CHECK(config.backends[0].name == "imap");
    CHECK(config.backends[0].addresses.at(0).to_string() == "127.0.0.1:143");
    CHECK(config.backends[0].connect_timeout == 10s);
    CHECK(config.backends[1].addresses.at(0).to_string() == "127.0.0.1:110");
    CHECK(config.backends[2].addresses.at(0).to_string() == "127.0.0.1:25");
    CHECK(config.backends[2].connect_timeout == 5s);
    CHECK(config.backends[2].key_name == "backend[3]");

    REQUIRE(config.listeners.size() == 5);
    const ListenerSpec& imap = config.listeners[0];
    CHECK(imap.listen.to_string() == "0.0.0.0:993");
    CHECK(imap.protocol == Protocol::Imap);
    CHECK(imap.tls == TlsMode::Implicit);
    CHECK(imap.backend == "imap");
    CHECK(imap.handshake_timeout == 30s);
    CHECK(imap.idle_timeout == 30min);
    CHECK(imap.key_name == "listener[1]");
    CHECK(imap.at.line == line_of(text, "\n[[listener]]\n") + 1);
    CHECK(imap.at.column == 1);
    CHECK(config.listeners[1].listen.port == 995);
    CHECK(config.listeners[1].protocol == Protocol::Pop3);
    CHECK(config.listeners[2].listen.port == 465);
    CHECK(config.listeners[2].protocol == Protocol::Smtp);
    CHECK(config.find_backend(config.listeners[2].backend)->addresses.at(0).port == 25);
    CHECK(config.listeners[2].require_tls);
    CHECK_FALSE(config.listeners[2].submission);

    const ListenerSpec& submission = config.listeners[3];
    CHECK(submission.listen.port == 587);
    CHECK(submission.tls == TlsMode::StartTls);
    CHECK(submission.submission);
    CHECK(submission.require_tls);
    CHECK(submission.plaintext_timeout == 60s);
    CHECK(submission.max_errors == 10);
    CHECK(submission.hostname == "smtp.example.net");
    const ListenerSpec& imap_starttls = config.listeners[4];
    CHECK(imap_starttls.listen.port == 143);
    CHECK(imap_starttls.tls == TlsMode::StartTls);
    CHECK(imap_starttls.require_tls);
    CHECK(imap_starttls.hostname.empty());
}

TEST_CASE("conf: relative cert and key paths resolve against the config file's folder") {
    const TempDir dir;
    dir.write("etc/tls/a.pem", "x");
    const fs::path absolute_key = dir.write("elsewhere/a.key", "x");
    const std::string text =
        "[[certificate]]\ncert = \"tls/./a.pem\"\nkey = \"" + absolute_key.string() + "\"\n";
    // The config lives in etc/ while the working directory is something else entirely.
    const Config config =
        require_config(load_config_text(text, dir.path() / "etc" / "postern.toml"));
    REQUIRE(config.certificates.size() == 1);
    CHECK(config.certificates[0].cert == dir.path() / "etc/tls/a.pem");
    CHECK(config.certificates[0].key == absolute_key);
    CHECK(config.certificates[0].key_name == "certificate[1]");
}

TEST_CASE("conf: Config::file is absolute when the config is named by a relative path") {
    const ConfDir dir;
    const fs::path file =
        dir.write("postern.toml", std::string{kValidHead} + std::string{kValidListener});
    const fs::path previous = fs::current_path();
    fs::current_path(dir.path());
    const LoadResult result = load_config("postern.toml");
    fs::current_path(previous);
    const Config config = require_config(result);
    CHECK(config.file.is_absolute());
    CHECK(config.file == file);
    CHECK(config.certificates[0].cert == dir.path() / "cert.pem");
}

TEST_CASE("conf: IPv6 listen and backend addresses load without their brackets") {
    const ConfDir dir;
    const std::string text = std::string{kValidHead} + R"(
[[backend]]
name = "v6"
address = "[::1]:1143"

[[listener]]
listen = "[2001:db8::1]:993"
protocol = "imap"
backend = "v6"

[[listener]]
listen = "[::]:995"
protocol = "pop3"
backend = "v6"
)";
    const Config config = require_config(dir.load(text));
    REQUIRE(config.listeners.size() == 2);
    CHECK(config.listeners[0].listen.host == "2001:db8::1");
    CHECK(config.listeners[0].listen.port == 993);
    CHECK(config.listeners[1].listen.to_string() == "[::]:995");
    CHECK(config.find_backend("v6")->addresses.at(0).host == "::1");
    CHECK(config.find_backend("v6")->addresses.at(0).to_string() == "[::1]:1143");
}

TEST_CASE("conf: a listener's idle timeout defaults by protocol and can be overridden") {
    const ConfDir dir;
    const std::string text = std::string{kValidHead} + R"(
[[listener]]
listen = "127.0.0.1:993"
protocol = "imap"
backend = "imap"

[[listener]]
listen = "127.0.0.1:995"
protocol = "pop3"
backend = "imap"

[[listener]]
listen = "127.0.0.1:465"
protocol = "smtp"
backend = "imap"

[[listener]]
listen = "127.0.0.1:587"
protocol = "smtp"
tls = "starttls"
backend = "imap"
idle_timeout = 42
handshake_timeout = "1500ms"
)";
    const Config config = require_config(dir.load(text));
    REQUIRE(config.listeners.size() == 4);
    CHECK(config.listeners[0].idle_timeout == 30min);
    CHECK(config.listeners[1].idle_timeout == 10min);
    CHECK(config.listeners[2].idle_timeout == 5min);
    CHECK(config.listeners[3].idle_timeout == 42s);
    CHECK(config.listeners[3].handshake_timeout == 1500ms);
    CHECK(config.listeners[3].tls == TlsMode::StartTls);
}

TEST_CASE("conf: omitted optional keys take their defaults") {
    const ConfDir dir;
    const Config config =
        require_config(dir.load(std::string{kValidHead} + std::string{kValidListener}));
    CHECK(config.server.log_level == "info");
    CHECK(config.server.log_format == LogFormat::Text);
    CHECK(config.tls.min_version == TlsVersion::Tls12);
    CHECK_FALSE(config.tls.strict_sni);
    CHECK(config.backends[0].connect_timeout == 10s);
    CHECK(config.listeners[0].tls == TlsMode::Implicit);
    CHECK(config.listeners[0].handshake_timeout == 30s);
}

TEST_CASE("conf: log_format = \"json\" is read") {
    const ConfDir dir;
    const Config config = require_config(dir.load("[server]\nlog_format = \"json\"\n"));
    CHECK(config.server.log_format == LogFormat::Json);
}

TEST_CASE("conf: a file without listeners needs no default certificate") {
    const ConfDir dir;
    const Config config = require_config(dir.load(""));
    CHECK(config.listeners.empty());
    CHECK(config.tls.default_certificate.empty());
}

TEST_CASE("conf: default_certificate is stored lower-case") {
    const ConfDir dir;
    const Config config = require_config(
        dir.load("[tls]\ndefault_certificate = \"Mail.Example.NET\"\nmin_version = \"1.3\"\n"
                 "strict_sni = true\n"));
    CHECK(config.tls.default_certificate == "mail.example.net");
    CHECK(config.tls.min_version == TlsVersion::Tls13);
    CHECK(config.tls.strict_sni);
}

}  // namespace postern::conf
