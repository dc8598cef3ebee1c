#pragma once
// Typed, validated configuration: what conf/load.cpp produces from a TOML file and every other
// module consumes read-only. Paths are already resolved against the config file's folder.
// Every spec remembers where it was written (Source + key) so that later checks, such as the
// certificate store finding a key that does not match its certificate, can name the line.

#include "protocols/protocol.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
    // Where a value was written is not part of it: specs that differ only in their positions
    // (a block added above them) compare equal (the reloader's "changed?" question).
    friend bool operator==(const Source& /*a*/, const Source& /*b*/) noexcept { return true; }
};

// "host:port", "[v6]:port"; host keeps no brackets. An empty host is refused by the loader.
struct Endpoint {
    std::string host;
    std::uint16_t port = 0;
    [[nodiscard]] std::string to_string() const;  // brackets an IPv6 host again
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// server.workers: at most this many event-loop threads; 0 asks for one per CPU core.
inline constexpr unsigned kMaxWorkers = 256;

// server.max_sessions: sessions open at once across every listener and worker.
inline constexpr std::size_t kDefaultMaxSessions = 10'000;
inline constexpr std::size_t kMaxMaxSessions = 1'000'000;

// server.log_format: how each log line is written to stderr (proxy/log.hpp).
enum class LogFormat { Text, Json };

struct ServerSettings {
    std::string log_level = "info";  // trace | debug | info | warn | error
    LogFormat log_format = LogFormat::Text;
    // DNS name for the greetings postern writes itself (SMTP 220, IMAP/POP3). Empty: the proxy
    // fills in the machine's FQDN at startup. Stored as written.
    std::string hostname;
    unsigned workers = 1;  // 0..kMaxWorkers; 0: one per CPU core, resolved by the proxy
    // 1..kMaxMaxSessions. Each session holds open files (the client's socket, the backend's),
    // so the proxy checks it against the open-files limit at startup (proxy/open_files.hpp):
    // a value written in the file that does not fit is refused, the default is lowered.
    std::size_t max_sessions = kDefaultMaxSessions;
    bool max_sessions_set = false;  // written in the file
    Source max_sessions_at;
    // How long a stopping postern lets busy sessions finish (proxy/drain.hpp); 0: none, every
    // session is closed at once.
    std::chrono::milliseconds shutdown_timeout{std::chrono::seconds{30}};
    // server.user and server.group: who `postern run`, started as root, becomes once every
    // listener is bound (proxy/privileges.hpp); certificate files are then read by a privileged
    // helper (proxy/privileged_helper.hpp). Empty: stay as started. The loader resolves the
    // names; the group defaults to the user's primary one.
    std::string user;
    std::string group;
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    Source user_at;
    friend bool operator==(const ServerSettings&, const ServerSettings&) = default;
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
    // Session-ticket keys shared with other instances (conf/ticket_key_file.hpp); absolute.
    // Empty: each process makes and rotates its own (tls/ticket_keys.hpp).
    std::filesystem::path ticket_keys_file;
    Source ticket_keys_file_at;
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

// backend.send_proxy: the PROXY protocol header written before any other byte.
enum class ProxyHeader : std::uint8_t { None, V1, V2 };
[[nodiscard]] const char* to_string(ProxyHeader header) noexcept;  // "none" | "v1" | "v2"

// An exec backend (UCSPI, as tcpserver and couriertcpd run qmail and Courier): one process per
// session, the session's plaintext on its fds 0 and 1.
struct ExecSpec {
    std::vector<std::string> argv;  // argv[0] is an absolute path; no shell
    std::string user;               // exec_user as written; empty: postern's own
    std::string group;              // exec_group as written; empty: the user's primary group
    // Resolved by the loader: set when exec_user or exec_group is (the group defaults to the
    // user's primary one). Unset: the child keeps postern's own.
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    std::vector<std::pair<std::string, std::string>> env;  // exec_env, sorted by name
    friend bool operator==(const ExecSpec&, const ExecSpec&) = default;
};

struct BackendSpec {
    std::string name;
    // Tried in order (failover); empty exactly when the backend is an exec one.
    std::vector<Endpoint> addresses;
    ExecSpec exec;  // argv empty: a TCP backend
    ProxyHeader send_proxy = ProxyHeader::None;
    bool xclient = false;  // the protocol's own forwarding command (XCLIENT, IMAP ID)
    std::chrono::milliseconds connect_timeout{std::chrono::seconds{10}};
    std::string key_name;  // "backend[1]"
    Source at;

    [[nodiscard]] bool is_exec() const noexcept { return !exec.argv.empty(); }
    // How the backend learns the client: "proxy-v1", "proxy-v2", "xclient", "exec" or "none".
    [[nodiscard]] const char* identity() const noexcept;
    friend bool operator==(const BackendSpec&, const BackendSpec&) = default;
};

// An IPv4 or IPv6 network ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"): trusted_proxies.
struct Network {
    std::uint8_t family = 4;               // 4 | 6
    std::array<std::uint8_t, 16> bytes{};  // network byte order; host bits cleared
    std::uint8_t prefix = 32;
    // `address`: 4 or 16 bytes in network byte order, of the given family. An IPv4-mapped IPv6
    // address (a client on a dual-stack listener) is judged as the IPv4 address it carries.
    [[nodiscard]] bool contains(std::uint8_t address_family,
                                const std::uint8_t* address) const noexcept;
    [[nodiscard]] std::string to_string() const;  // "10.0.0.0/8"
    friend bool operator==(const Network&, const Network&) = default;
};

// listener.routes: one SNI name (or "*.name", one label) and the backend it picks.
struct Route {
    std::string server_name;  // lower case, no trailing dot; "*.beta.example" kept as such
    std::string backend;
    Source at;
    friend bool operator==(const Route&, const Route&) = default;
};

// listener[].max_new_per_client: at most `count` new connections from one client address in a
// window of `window` (counted from the first of them, as Postfix's anvil does). count 0: "off".
struct Rate {
    std::uint32_t count = 0;
    std::chrono::milliseconds window{0};
    [[nodiscard]] bool off() const noexcept { return count == 0; }
    friend bool operator==(const Rate&, const Rate&) = default;
};
// As it is written in the config: "30/10s", "5/1500ms", "off".
[[nodiscard]] std::string to_string(const Rate& rate);

// listener[].max_sessions_per_client and max_new_per_client: defaults and ranges (0 / "off":
// no limit, as Postfix's smtpd_client_connection_count_limit = 0).
inline constexpr std::uint32_t kDefaultMaxSessionsPerClient = 50;
inline constexpr Rate kDefaultMaxNewPerClient{30, std::chrono::seconds{10}};
inline constexpr std::uint32_t kMaxPerClient = 1'000'000;
inline constexpr std::chrono::seconds kMinRateWindow{1};
inline constexpr std::chrono::hours kMaxRateWindow{1};

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
    // After the handshake the SNI picks the backend: an exact name, then "*." one label up,
    // else `backend`. Sorted by server_name.
    std::vector<Route> routes;
    // Each connection starts with a PROXY v1/v2 header from one of trusted_proxies (a load
    // balancer); its source address is the client from then on.
    bool accept_proxy = false;
    std::vector<Network> trusted_proxies;
    // Per client address (an IPv6 client by its /64) on this listener: sessions open at once
    // (0: no limit) and new connections per window. The address is the PROXY header's with
    // accept_proxy. Enforced by proxy/client_limits.hpp.
    std::uint32_t max_sessions_per_client = kDefaultMaxSessionsPerClient;
    Rate max_new_per_client = kDefaultMaxNewPerClient;
    std::string key_name;  // "listener[1]"
    Source at;
    friend bool operator==(const ListenerSpec&, const ListenerSpec&) = default;
};

// [metrics] (proxy/metrics_endpoint.hpp): the Prometheus and health endpoint. No listen: off.
struct MetricsSettings {
    std::optional<Endpoint> listen;
    Source listen_at;
    friend bool operator==(const MetricsSettings&, const MetricsSettings&) = default;
};

struct Config {
    std::filesystem::path file;  // the config file itself, absolute
    ServerSettings server;
    TlsSettings tls;
    MetricsSettings metrics;
    // The [[certificate]] tables only; tls.certificates_dir is scanned when the store is built.
    std::vector<CertificateSpec> certificates;
    std::vector<BackendSpec> backends;
    std::vector<ListenerSpec> listeners;

    // Exact, case-sensitive name match; nullptr when no backend has that name.
    [[nodiscard]] const BackendSpec* find_backend(std::string_view name) const noexcept;
    // The backend the listener's routes pick for `server_name` (lower case; empty: no SNI or
    // no TLS), else its default backend.
    [[nodiscard]] static const std::string& route(const ListenerSpec& listener,
                                                  std::string_view server_name);
};

}  // namespace postern::conf
