#include "conf/load.hpp"

#include "conf/files.hpp"
#include "conf/parse_value.hpp"
#include "conf/toml_reader.hpp"

#include <toml++/toml.h>

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace postern::conf {

namespace {

namespace fs = std::filesystem;
using detail::Choice;
using detail::ErrorSink;
using detail::Need;
using detail::TableReader;

constexpr std::array<Choice<std::string_view>, 5> kLogLevels{{
    {"trace", "trace"},
    {"debug", "debug"},
    {"info", "info"},
    {"warn", "warn"},
    {"error", "error"},
}};
constexpr std::array<Choice<TlsVersion>, 2> kTlsVersions{{
    {"1.2", TlsVersion::Tls12},
    {"1.3", TlsVersion::Tls13},
}};
// The protocols' own names (protocols/protocol.hpp), matched exactly.
constexpr std::array<Choice<Protocol>, 3> kProtocols{{
    {to_string(Protocol::Imap), Protocol::Imap},
    {to_string(Protocol::Pop3), Protocol::Pop3},
    {to_string(Protocol::Smtp), Protocol::Smtp},
}};
constexpr std::array<Choice<TlsMode>, 2> kTlsModes{{
    {"implicit", TlsMode::Implicit},
    {"starttls", TlsMode::StartTls},
}};

fs::path absolute_path(const fs::path& file) {
    std::error_code ec;
    fs::path absolute = fs::absolute(file, ec);
    return ec ? file.lexically_normal() : absolute.lexically_normal();
}

// The whole file, or the OS's reason it could not be read.
Parsed<std::string> read_file(const fs::path& file) {
    const FilePtr stream{std::fopen(file.c_str(), "rb")};
    if (!stream) {
        return {std::nullopt, errno_text(errno)};
    }
    std::string text;
    std::array<char, 16384> chunk{};
    std::size_t got = 0;
    while ((got = std::fread(chunk.data(), 1, chunk.size(), stream.get())) > 0) {
        text.append(chunk.data(), got);
    }
    // A directory opens fine on Linux and only fails here, with EISDIR.
    if (std::ferror(stream.get()) != 0) {
        return {std::nullopt, errno_text(errno)};
    }
    return {std::move(text), {}};
}

std::string not_a_dns_name(const std::string& name) {
    return "\"" + name +
           "\" is not a DNS name (letters, digits and hyphens in dot-separated labels, e.g. "
           "mail.example.net)";
}

// server.hostname and listener[].hostname: a DNS name kept as written. Absent leaves `out`
// empty (the proxy's FQDN, or server.hostname for a listener); "" is refused like any empty
// string value.
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

// submission, require_tls and plaintext_timeout, which depend on protocol and tls. A key is
// only checked against a protocol or tls mode that was itself read without error, so one typo
// is not reported twice.
void read_starttls_keys(TableReader& table, ListenerSpec& spec, bool protocol_known,
                        bool mode_known) {
    const bool implicit = mode_known && spec.tls == TlsMode::Implicit;
    if (auto submission = table.boolean("submission")) {
        if (protocol_known && spec.protocol != Protocol::Smtp) {
            table.error("submission", table.at("submission"),
                        std::string{"submission only applies to smtp listeners (this one is "} +
                            std::string{to_string(spec.protocol)} + ")");
        } else {
            spec.submission = *submission;
        }
    }
    const std::optional<bool> require_tls = table.boolean("require_tls");
    if (require_tls && implicit) {
        table.error("require_tls", table.at("require_tls"),
                    "require_tls only applies to starttls listeners; with tls = \"implicit\" "
                    "TLS is always required");
    }
    if (auto timeout = table.duration("plaintext_timeout")) {
        if (implicit) {
            table.error("plaintext_timeout", table.at("plaintext_timeout"),
                        "plaintext_timeout only applies to starttls listeners; with tls = "
                        "\"implicit\" handshake_timeout limits the time before TLS");
        } else {
            spec.plaintext_timeout = *timeout;
        }
    }
    // RFC 3207 4: a publicly referenced MX must not require TLS, so plain smtp (port 25) lets
    // clients go on without it unless told otherwise; submission, IMAP and POP3 do not.
    const bool by_default = spec.protocol != Protocol::Smtp || spec.submission;
    spec.require_tls = spec.tls == TlsMode::Implicit || require_tls.value_or(by_default);
}

// Which clients a listen address takes, to find two listeners that would fight over a port:
// a wildcard takes every address of its family, and [::] (dual-stack) IPv4 clients as well.
// Host names are resolved only at startup, so they are not judged here.
enum class Reach : std::uint8_t { Unknown, One4, One6, Any4, Any6 };

Reach reach_of(const std::string& host) {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        return v4.s_addr == htonl(INADDR_ANY) ? Reach::Any4 : Reach::One4;
    }
    if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        return IN6_IS_ADDR_UNSPECIFIED(&v6) ? Reach::Any6 : Reach::One6;
    }
    return Reach::Unknown;
}

// Two different addresses on one port that one bind would refuse (and SO_REUSEPORT, with
// several workers, would let through to split the clients).
bool overlap(Reach a, Reach b) {
    if (a == Reach::Unknown || b == Reach::Unknown) {
        return false;
    }
    if (a == Reach::Any6 || b == Reach::Any6) {
        return true;
    }
    return (a == Reach::Any4 && b == Reach::One4) || (a == Reach::One4 && b == Reach::Any4);
}

class Loader {
public:
    explicit Loader(fs::path file) : errors_(file.string()), base_(file.parent_path()) {
        config_.file = std::move(file);
    }

    LoadResult run(std::string_view text);

private:
    void read_server(TableReader& root);
    void read_tls(TableReader& root);
    void read_certificate(TableReader& table);
    void read_backend(TableReader& table);
    void read_listener(TableReader& table);
    void check_listener_needs(std::size_t listeners, std::size_t certificates);
    void check_overlap(TableReader& table, const Endpoint& listen, const Source& at);
    std::optional<fs::path> existing_file(TableReader& table, std::string_view key);
    [[nodiscard]] fs::path resolve(const std::string& text) const {
        return (base_ / fs::path{text}).lexically_normal();  // absolute stays absolute
    }

    Config config_;
    ErrorSink errors_;
    fs::path base_;
    Source tls_at_;
    bool tls_default_given_ = false;
    bool certificates_dir_given_ = false;
    Source first_listener_at_;
    // Backend name -> key that declared it, and its position. Holds every declared name, so a
    // backend with a bad address does not also make each listener naming it an error.
    std::map<std::string, std::pair<std::string, Source>, std::less<>> backend_names_;
    // Lower-cased "host:port" -> key of the listen value that claimed it, and its position.
    std::map<std::string, std::pair<std::string, Source>> listen_owners_;
    struct Claim {
        Endpoint listen;
        Reach reach = Reach::Unknown;
        std::string key;
        Source at;
    };
    std::vector<Claim> listens_;  // every listen address so far, in order
};

LoadResult Loader::run(std::string_view text) {
    toml::table document;
    try {
        document = toml::parse(text, std::string{errors_.file()});
    } catch (const toml::parse_error& e) {
        // toml++ stops at its first syntax error, so there is exactly one to report.
        errors_.add(detail::source_of(e.source()), {},
                    "TOML syntax error: " + std::string{e.description()});
        return {std::nullopt, errors_.take()};
    }
    TableReader root{document, {}, errors_};
    root.reject_unknown_keys({"server", "tls", "certificate", "backend", "listener"});
    read_server(root);
    read_tls(root);
    const std::size_t certificates =
        root.for_each_table("certificate", [this](TableReader& t) { read_certificate(t); });
    // Backends first, whatever the document order, so listeners can check their references.
    root.for_each_table("backend", [this](TableReader& t) { read_backend(t); });
    const std::size_t listeners =
        root.for_each_table("listener", [this](TableReader& t) { read_listener(t); });
    check_listener_needs(listeners, certificates);
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
    server.reject_unknown_keys({"log_level", "hostname", "workers"});
    if (auto level = server.choice<std::string_view>("log_level", kLogLevels, Need::Optional)) {
        config_.server.log_level = *level;
    }
    read_hostname(server, config_.server.hostname);
    if (auto workers = server.integer("workers", 0, std::int64_t{kMaxWorkers})) {
        config_.server.workers = static_cast<unsigned>(*workers);
    }
}

void Loader::read_tls(TableReader& root) {
    const toml::table* table = root.table("tls");
    if (table == nullptr) {
        return;
    }
    TableReader tls{*table, "tls", errors_};
    tls_at_ = tls.at();
    tls.reject_unknown_keys({"min_version", "default_certificate", "strict_sni", "certificates_dir",
                             "expiry_warning_days"});
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
        if (const std::optional<std::string> reason = detail::unreadable_dir_reason(path)) {
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
}

std::optional<fs::path> Loader::existing_file(TableReader& table, std::string_view key) {
    const std::optional<std::string> text = table.string(key, Need::Required);
    if (!text) {
        return std::nullopt;
    }
    const fs::path path = resolve(*text);
    if (const std::optional<std::string> reason = detail::unreadable_file_reason(path)) {
        table.error(key, table.at(key), "cannot read \"" + path.string() + "\": " + *reason);
        return std::nullopt;
    }
    return path;
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

void Loader::read_backend(TableReader& table) {
    table.reject_unknown_keys({"name", "address", "connect_timeout"});
    BackendSpec spec;
    spec.key_name = table.path();
    spec.at = table.at();
    if (auto name = table.string("name", Need::Required)) {
        const auto [it, fresh] =
            backend_names_.try_emplace(*name, table.key_path("name"), table.at("name"));
        if (!fresh) {
            table.error("name", table.at("name"),
                        "duplicate backend name \"" + *name + "\" (first defined by " +
                            it->second.first + " on line " +
                            std::to_string(it->second.second.line) + ")");
        }
        spec.name = std::move(*name);
    }
    if (auto address = table.endpoint("address", Need::Required)) {
        spec.address = std::move(*address);
    }
    if (auto timeout = table.duration("connect_timeout")) {
        spec.connect_timeout = *timeout;
    }
    config_.backends.push_back(std::move(spec));
}

void Loader::read_listener(TableReader& table) {
    table.reject_unknown_keys({"listen", "protocol", "tls", "backend", "handshake_timeout",
                               "idle_timeout", "hostname", "require_tls", "submission",
                               "plaintext_timeout", "max_errors"});
    ListenerSpec spec;
    spec.key_name = table.path();
    spec.at = table.at();
    if (first_listener_at_.line == 0) {
        first_listener_at_ = spec.at;
    }
    if (auto listen = table.endpoint("listen", Need::Required)) {
        const std::string claim = lower_ascii(listen->to_string());
        const Source listen_at = table.at("listen");
        const auto [it, fresh] =
            listen_owners_.try_emplace(claim, table.key_path("listen"), listen_at);
        if (!fresh) {
            table.error("listen", listen_at,
                        "listen address " + listen->to_string() + " is already used by " +
                            it->second.first + " on line " +
                            std::to_string(it->second.second.line));
        } else {
            check_overlap(table, *listen, listen_at);
        }
        spec.listen = std::move(*listen);
    }
    const std::optional<Protocol> protocol =
        table.choice<Protocol>("protocol", kProtocols, Need::Required);
    if (protocol) {
        spec.protocol = *protocol;
        spec.idle_timeout = default_idle_timeout(*protocol);
    }
    const std::optional<TlsMode> mode =
        table.choice<TlsMode>("tls", kTlsModes, Need::Optional, "tls mode");
    if (mode) {
        spec.tls = *mode;
    }
    if (auto backend = table.string("backend", Need::Required)) {
        if (backend_names_.find(*backend) == backend_names_.end()) {
            std::vector<std::string_view> names;
            for (const auto& [name, declared] : backend_names_) {
                names.push_back(name);
            }
            table.error("backend", table.at("backend"),
                        "no backend named \"" + *backend + "\" " +
                            (names.empty() ? "(no [[backend]] is defined)"
                                           : "(have: " + detail::join(names) + ")"));
        }
        spec.backend = std::move(*backend);
    }
    if (auto timeout = table.duration("handshake_timeout")) {
        spec.handshake_timeout = *timeout;
    }
    if (auto timeout = table.duration("idle_timeout")) {
        spec.idle_timeout = *timeout;
    }
    read_hostname(table, spec.hostname);
    if (auto errors = table.integer("max_errors", 1, static_cast<std::int64_t>(kMaxMaxErrors))) {
        spec.max_errors = static_cast<std::size_t>(*errors);
    }
    read_starttls_keys(table, spec, protocol.has_value(), !table.has("tls") || mode.has_value());
    config_.listeners.push_back(std::move(spec));
}

void Loader::check_overlap(TableReader& table, const Endpoint& listen, const Source& at) {
    const Reach reach = reach_of(listen.host);
    for (const Claim& earlier : listens_) {
        if (earlier.listen.port != listen.port || !overlap(reach, earlier.reach)) {
            continue;
        }
        const bool dual = reach == Reach::Any6 || earlier.reach == Reach::Any6;
        table.error("listen", at,
                    "listen address " + listen.to_string() + " overlaps " +
                        earlier.listen.to_string() + " of " + earlier.key + " on line " +
                        std::to_string(earlier.at.line) + ": " +
                        (dual ? "[::] takes IPv4 clients too, so "
                              : "0.0.0.0 takes every IPv4 address, so ") +
                        "both would accept the same clients on port " +
                        std::to_string(listen.port) + "; use one, or another port");
        break;
    }
    listens_.push_back(Claim{listen, reach, table.key_path("listen"), at});
}

void Loader::check_listener_needs(std::size_t listeners, std::size_t certificates) {
    if (listeners == 0) {
        return;
    }
    if (certificates == 0 && !certificates_dir_given_) {
        errors_.add(first_listener_at_, "certificate",
                    "no [[certificate]] and no tls.certificates_dir is defined; a [[listener]] "
                    "needs at least one certificate");
    }
    // With no SNI (or an unknown name) a listener still has to present some certificate.
    if (!tls_default_given_) {
        const Source at = tls_at_.line != 0 ? tls_at_ : first_listener_at_;
        errors_.add(at, "tls.default_certificate",
                    "missing required key \"default_certificate\": needed when any [[listener]] "
                    "is defined, to pick the certificate for clients that send no SNI or an "
                    "unknown name");
    }
}

}  // namespace

LoadResult load_config(const std::filesystem::path& file) {
    const fs::path absolute = absolute_path(file);
    Parsed<std::string> text = read_file(absolute);
    if (!text.value) {
        return {
            std::nullopt,
            {ConfigError{absolute.string(), 0, 0, {}, "cannot read config file: " + text.error}}};
    }
    return Loader{absolute}.run(*text.value);
}

LoadResult load_config_text(std::string_view text, const std::filesystem::path& file) {
    return Loader{absolute_path(file)}.run(text);
}

}  // namespace postern::conf
