// The loader's entry points and the document around the listeners: reading the file, TOML
// syntax, [server], [tls] and [[certificate]]. [[backend]] is read in conf/load_backend.cpp,
// [[listener]] in conf/load_listener.cpp; detail::Loader (conf/loader.hpp) is the state both share.

#include "conf/load.hpp"

#include "conf/accounts.hpp"
#include "conf/loader.hpp"
#include "conf/parse_value.hpp"
#include "conf/ticket_key_file.hpp"
#include "conf/toml_reader.hpp"

#include <toml++/toml.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace postern::conf {

namespace {

namespace fs = std::filesystem;
using detail::Choice;

constexpr std::array<Choice<std::string_view>, 5> kLogLevels{{
    {"trace", "trace"},
    {"debug", "debug"},
    {"info", "info"},
    {"warn", "warn"},
    {"error", "error"},
}};
constexpr std::array<Choice<LogFormat>, 2> kLogFormats{{
    {"text", LogFormat::Text},
    {"json", LogFormat::Json},
}};
constexpr std::array<Choice<TlsVersion>, 2> kTlsVersions{{
    {"1.2", TlsVersion::Tls12},
    {"1.3", TlsVersion::Tls13},
}};

std::string not_a_dns_name(const std::string& name) {
    return "\"" + name +
           "\" is not a DNS name (letters, digits and hyphens in dot-separated labels, e.g. "
           "mail.example.net)";
}

}  // namespace

namespace detail {

void read_hostname(TableReader& table, std::string& out) {
    std::optional<std::string> name = table.string("hostname", Need::Optional);
    if (!name) {
        return;
    }
    if (!is_dns_name(*name)) {
        table.error("hostname", table.at("hostname"), not_a_dns_name(*name));
        return;
    }
    out = std::move(*name);
}

std::string lower_ascii(std::string text) {
    for (char& c : text) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return text;
}

LoadResult Loader::run(std::string_view text) {
    toml::table document;
    try {
        document = toml::parse(text, std::string{errors_.file()});
    } catch (const toml::parse_error& e) {
        // toml++ stops at its first syntax error, so there is exactly one to report.
        errors_.add(source_of(e.source()), {},
                    "TOML syntax error: " + std::string{e.description()});
        return {std::nullopt, errors_.take()};
    }
    TableReader root{document, {}, errors_};
    root.reject_unknown_keys({"server", "tls", "certificate", "backend", "listener", "metrics"});
    read_server(root);
    read_tls(root);
    const std::size_t certificates =
        root.for_each_table("certificate", [this](TableReader& t) { read_certificate(t); });
    // Backends first, whatever the document order, so listeners can check their references.
    root.for_each_table("backend", [this](TableReader& t) { read_backend(t); });
    const std::size_t listeners =
        root.for_each_table("listener", [this](TableReader& t) { read_listener(t); });
    check_listener_needs(listeners, certificates);
    read_metrics(root);  // conf/load_metrics.cpp; after the listeners, whose ports it must avoid
    if (errors_.count() != 0) {
        return {std::nullopt, errors_.take()};
    }
    return {std::move(config_), {}};
}

void Loader::read_server(TableReader& root) {
    const toml::table* table = root.table("server");
    if (table == nullptr) {
        return;
    }
    TableReader server{*table, "server", errors_};
    server.reject_unknown_keys({"log_level", "log_format", "hostname", "workers", "max_sessions",
                                "shutdown_timeout", "user", "group"});
    if (auto level = server.choice<std::string_view>("log_level", kLogLevels, Need::Optional)) {
        config_.server.log_level = *level;
    }
    if (auto format = server.choice<LogFormat>("log_format", kLogFormats, Need::Optional)) {
        config_.server.log_format = *format;
    }
    read_hostname(server, config_.server.hostname);
    if (auto workers = server.integer("workers", 0, std::int64_t{kMaxWorkers})) {
        config_.server.workers = static_cast<unsigned>(*workers);
    }
    if (auto sessions =
            server.integer("max_sessions", 1, static_cast<std::int64_t>(kMaxMaxSessions))) {
        config_.server.max_sessions = static_cast<std::size_t>(*sessions);
        config_.server.max_sessions_set = true;
        config_.server.max_sessions_at = server.at("max_sessions");
    }
    if (auto timeout = server.duration("shutdown_timeout", Zero::Allowed)) {
        config_.server.shutdown_timeout = *timeout;
    }
    read_server_user(server, config_.server);
}

void Loader::read_tls(TableReader& root) {
    const toml::table* table = root.table("tls");
    if (table == nullptr) {
        return;
    }
    TableReader tls{*table, "tls", errors_};
    tls_at_ = tls.at();
    tls.reject_unknown_keys({"min_version", "default_certificate", "strict_sni", "certificates_dir",
                             "expiry_warning_days", "ticket_keys_file"});
    if (auto version = tls.choice<TlsVersion>("min_version", kTlsVersions, Need::Optional)) {
        config_.tls.min_version = *version;
    }
    tls_default_given_ = tls.has("default_certificate");
    if (auto name = tls.string("default_certificate", Need::Optional)) {
        // DNS names compare case-insensitively; one spelling spares every later comparison.
        std::string lowered = lower_ascii(std::move(*name));
        if (is_dns_name(lowered)) {
            config_.tls.default_certificate = std::move(lowered);
            config_.tls.default_certificate_at = tls.at("default_certificate");
        } else {
            tls.error("default_certificate", tls.at("default_certificate"),
                      not_a_dns_name(lowered));
        }
    }
    if (auto strict = tls.boolean("strict_sni")) {
        config_.tls.strict_sni = *strict;
    }
    certificates_dir_given_ = tls.has("certificates_dir");
    if (auto dir = tls.string("certificates_dir", Need::Optional)) {
        // Its subfolders are read by tls::CertStore::build (conf/certificates_dir.hpp), so that
        // every rebuilt store sees them as they are then; here only the folder itself.
        const fs::path path = resolve(*dir);
        if (const std::optional<std::string>& reason = files_.dir(path).error) {
            tls.error("certificates_dir", tls.at("certificates_dir"),
                      "cannot read directory \"" + path.string() + "\": " + *reason);
        } else {
            config_.tls.certificates_dir = path;
            config_.tls.certificates_dir_at = tls.at("certificates_dir");
        }
    }
    if (auto days = tls.integer("expiry_warning_days", 0, kMaxExpiryWarningDays)) {
        config_.tls.expiry_warning_days = static_cast<std::uint32_t>(*days);
    }
    if (tls.has("ticket_keys_file")) {
        read_ticket_keys_file(tls, config_.tls);
    }
}

std::optional<fs::path> Loader::existing_file(TableReader& table, std::string_view key) {
    const std::optional<std::string> text = table.string(key, Need::Required);
    if (!text) {
        return std::nullopt;
    }
    const fs::path path = resolve(*text);
    if (const FileRead& read = files_.file(path); !read.bytes) {
        table.error(key, table.at(key), "cannot read \"" + path.string() + "\": " + read.error);
        return std::nullopt;
    }
    return path;
}

void Loader::read_ticket_keys_file(TableReader& tls, TlsSettings& out) {
    const std::optional<fs::path> path = existing_file(tls, "ticket_keys_file");
    if (!path) {
        return;
    }
    // Checked here, through the snapshot, so `postern check` and a reload see a bad file, and
    // the privileged helper's snapshot holds it (it reads what the loader asks for).
    const TicketKeyFile parsed = parse_ticket_keys(*files_.file(*path).bytes);
    if (!parsed.error.empty()) {
        const std::string where =
            path->string() + (parsed.line != 0 ? ":" + std::to_string(parsed.line) : "");
        tls.error("ticket_keys_file", tls.at("ticket_keys_file"), where + ": " + parsed.error);
        return;
    }
    out.ticket_keys_file = *path;
    out.ticket_keys_file_at = tls.at("ticket_keys_file");
}

void Loader::read_certificate(TableReader& table) {
    table.reject_unknown_keys({"cert", "key", "pkcs12", "password_file"});
    CertificateSpec spec;
    spec.key_name = table.path();
    spec.at = table.at();
    const bool pem = table.has("cert") || table.has("key");
    if (table.has("pkcs12")) {
        if (pem) {
            table.error("pkcs12", table.at("pkcs12"),
                        "give either cert and key (PEM files) or pkcs12 (a PKCS#12 bundle), not "
                        "both");
        } else {
            spec.pkcs12 = existing_file(table, "pkcs12").value_or(fs::path{});
            if (table.has("password_file")) {
                spec.password_file = existing_file(table, "password_file").value_or(fs::path{});
            }
        }
    } else if (!pem) {
        errors_.add(table.at(), table.path(),
                    "no certificate given: set cert and key (PEM files), or pkcs12 (a PKCS#12 "
                    "bundle)");
    } else {
        spec.cert = existing_file(table, "cert").value_or(fs::path{});
        spec.key = existing_file(table, "key").value_or(fs::path{});
        if (table.has("password_file")) {
            table.error("password_file", table.at("password_file"),
                        "password_file is only used with pkcs12; a PEM key must not be "
                        "encrypted");
        }
    }
    config_.certificates.push_back(std::move(spec));
}

}  // namespace detail

LoadResult load_config(const std::filesystem::path& file) {
    return load_config(*FileSnapshot::reading(absolute_config_path(file)));
}

LoadResult load_config(const FileSnapshot& files) {
    const fs::path& file = files.config_file();
    const FileRead& text = files.file(file);
    if (!text.bytes) {
        return {std::nullopt,
                {ConfigError{file.string(), 0, 0, {}, "cannot read config file: " + text.error}}};
    }
    return detail::Loader{file, files}.run(*text.bytes);
}

LoadResult load_config_text(std::string_view text, const std::filesystem::path& file) {
    const fs::path absolute = absolute_config_path(file);
    return detail::Loader{absolute, *FileSnapshot::reading(absolute)}.run(text);
}

}  // namespace postern::conf
