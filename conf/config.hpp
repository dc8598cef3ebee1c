#pragma once
// Typed, validated configuration: what conf/load.cpp produces from a TOML file and every other
// module consumes read-only. Paths are already resolved against the config file's folder.
// Every spec remembers where it was written (Source + key) so that later checks, such as the
// certificate store finding a key that does not match its certificate, can name the line.

#include "protocols/protocol.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace postern::conf {

// The listener's protocol is the machines' own enum (protocols/protocol.hpp), named here so
// conf::Protocol::Smtp and conf::to_string(protocol) read as before.
using protocols::Protocol;
using protocols::to_string;  // "imap" | "pop3" | "smtp"

enum class TlsMode : std::uint8_t { Implicit, StartTls };
enum class TlsVersion : std::uint8_t { Tls12, Tls13 };

[[nodiscard]] const char* to_string(TlsMode mode) noexcept;        // "implicit" | "starttls"
[[nodiscard]] const char* to_string(TlsVersion version) noexcept;  // "1.2" | "1.3"

// Idle timeout a listener gets when it sets none: imap 30 min (RFC 9051 autologout), pop3 10 min
// (RFC 1939), smtp 5 min (RFC 5321 4.5.3.2).
[[nodiscard]] std::chrono::milliseconds default_idle_timeout(Protocol protocol) noexcept;

// Where a value was written in the config file (0 = unknown).
struct Source {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

// "host:port", "[v6]:port"; host keeps no brackets. An empty host is refused by the loader.
struct Endpoint {
    std::string host;
    std::uint16_t port = 0;
    [[nodiscard]] std::string to_string() const;  // brackets an IPv6 host again
};

// server.workers: at most this many event-loop threads; 0 asks for one per CPU core.
inline constexpr unsigned kMaxWorkers = 256;

struct ServerSettings {
    std::string log_level = "info";  // trace | debug | info | warn | error
    // DNS name for the greetings postern writes itself (SMTP 220, IMAP/POP3). Empty: the proxy
    // fills in the machine's FQDN at startup. Stored as written.
    std::string hostname;
    unsigned workers = 1;  // 0..kMaxWorkers; 0: one per CPU core, resolved by the proxy
};

// Certificates within this many days of their not-after date are reported by `postern check`
// and at startup.
inline constexpr std::uint32_t kDefaultExpiryWarningDays = 30;
inline constexpr std::uint32_t kMaxExpiryWarningDays = 3650;

struct TlsSettings {
    TlsVersion min_version = TlsVersion::Tls12;
    std::string default_certificate;  // DNS name; must be covered by a loaded certificate
    bool strict_sni = false;          // unknown SNI -> unrecognized_name alert instead of default
    Source default_certificate_at;
    // certbot's "live" layout: every subfolder holding fullchain.pem + privkey.pem is one
    // certificate (conf/certificates_dir.hpp). Empty when not set; absolute otherwise.
    std::filesystem::path certificates_dir;
    Source certificates_dir_at;
    std::uint32_t expiry_warning_days = kDefaultExpiryWarningDays;  // 0: no early warning
};

// Where a CertificateSpec came from; errors about it are keyed accordingly.
enum class CertificateOrigin : std::uint8_t {
    Entry,   // a [[certificate]] table: errors name "certificate[i].<field>"
    Folder,  // a subfolder of tls.certificates_dir: errors name "tls.certificates_dir"
};

// Either cert + key (PEM) or pkcs12 (+ password_file); the loader accepts nothing else.
struct CertificateSpec {
    std::filesystem::path cert;  // PEM: leaf first, then the chain; empty with pkcs12
    std::filesystem::path key;   // PEM private key; empty with pkcs12
    std::string key_name;        // "certificate[1]", or "tls.certificates_dir", for errors
    Source at;
    std::filesystem::path pkcs12;         // PKCS#12 bundle: key, leaf and chain in one file
    std::filesystem::path password_file;  // its password (one trailing newline dropped); empty
                                          // path: the bundle has an empty password
    CertificateOrigin origin = CertificateOrigin::Entry;
};

struct BackendSpec {
    std::string name;
    Endpoint address;
    std::chrono::milliseconds connect_timeout{std::chrono::seconds{10}};
    std::string key_name;  // "backend[1]"
    Source at;
};

// listener[].max_errors: default and range.
inline constexpr std::size_t kDefaultMaxErrors = 10;
inline constexpr std::size_t kMaxMaxErrors = 1000;

struct ListenerSpec {
    Endpoint listen;
    Protocol protocol = Protocol::Imap;
    TlsMode tls = TlsMode::Implicit;
    std::string backend;  // name of a BackendSpec (validated)
    // A TLS handshake not finished by then is dropped (slow or silent clients).
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds{30}};
    // No bytes either way for this long closes the session. Defaults by protocol when not set:
    // imap 30 min (RFC 9051 autologout), pop3 10 min (RFC 1939), smtp 5 min (RFC 5321 4.5.3.2).
    std::chrono::milliseconds idle_timeout{0};
    // Overrides server.hostname for this listener's greetings; empty: inherit server.hostname.
    std::string hostname;
    // STARTTLS listeners: refuse mail commands until the client has upgraded. Resolved by the
    // loader when not set: imap and pop3 true, smtp true only with `submission` (RFC 3207 4: a
    // publicly referenced MX must not require TLS). Always true on implicit listeners, where
    // the key may not be set.
    bool require_tls = true;
    bool submission = false;  // smtp only: a port-587 style submission listener (RFC 6409)
    // STARTTLS listeners: a client silent this long before TLS is dropped with the protocol's
    // error. Not settable on implicit listeners (handshake_timeout covers them).
    std::chrono::milliseconds plaintext_timeout{std::chrono::seconds{60}};
    std::size_t max_errors = kDefaultMaxErrors;  // bad commands in a row before closing
    std::string key_name;                        // "listener[1]"
    Source at;
};

struct Config {
    std::filesystem::path file;  // the config file itself, absolute
    ServerSettings server;
    TlsSettings tls;
    // The [[certificate]] tables only; tls.certificates_dir is scanned when the store is built.
    std::vector<CertificateSpec> certificates;
    std::vector<BackendSpec> backends;
    std::vector<ListenerSpec> listeners;

    // Exact, case-sensitive name match; nullptr when no backend has that name.
    [[nodiscard]] const BackendSpec* find_backend(std::string_view name) const noexcept;
};

}  // namespace postern::conf
