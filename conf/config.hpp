#pragma once
// Typed, validated configuration: what conf/load.cpp produces from a TOML file and every other
// module consumes read-only. Paths are already resolved against the config file's folder.
// Every spec remembers where it was written (Source + key) so that later checks, such as the
// certificate store finding a key that does not match its certificate, can name the line.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace postern::conf {

enum class Protocol : std::uint8_t { Imap, Pop3, Smtp };
enum class TlsMode : std::uint8_t { Implicit, StartTls };
enum class TlsVersion : std::uint8_t { Tls12, Tls13 };

[[nodiscard]] const char* to_string(Protocol protocol) noexcept;   // "imap" | "pop3" | "smtp"
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

struct ServerSettings {
    std::string log_level = "info";  // trace | debug | info | warn | error
};

struct TlsSettings {
    TlsVersion min_version = TlsVersion::Tls12;
    std::string default_certificate;  // DNS name; must be covered by a loaded certificate
    bool strict_sni = false;          // unknown SNI -> unrecognized_name alert instead of default
    Source default_certificate_at;
};

struct CertificateSpec {
    std::filesystem::path cert;  // PEM: leaf first, then the chain
    std::filesystem::path key;   // PEM private key
    std::string key_name;        // "certificate[1]", for error messages
    Source at;
};

struct BackendSpec {
    std::string name;
    Endpoint address;
    std::chrono::milliseconds connect_timeout{std::chrono::seconds{10}};
    std::string key_name;  // "backend[1]"
    Source at;
};

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
    std::string key_name;  // "listener[1]"
    Source at;
};

struct Config {
    std::filesystem::path file;  // the config file itself, absolute
    ServerSettings server;
    TlsSettings tls;
    std::vector<CertificateSpec> certificates;
    std::vector<BackendSpec> backends;
    std::vector<ListenerSpec> listeners;

    // Exact, case-sensitive name match; nullptr when no backend has that name.
    [[nodiscard]] const BackendSpec* find_backend(std::string_view name) const noexcept;
};

}  // namespace postern::conf
