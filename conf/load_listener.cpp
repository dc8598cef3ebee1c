// [[listener]] tables and the rules that span listeners: which keys a listener's protocol and
// tls mode allow, listen addresses that two listeners would both bind, and what any listener
// needs from [tls] and [[certificate]]. Part of detail::Loader (conf/loader.hpp).

#include "conf/loader.hpp"
#include "conf/parse_value.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::conf::detail {

namespace {

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

}  // namespace

void Loader::read_listener(TableReader& table) {
    table.reject_unknown_keys({"listen", "protocol", "tls", "backend", "handshake_timeout",
                               "idle_timeout", "hostname", "require_tls", "submission",
                               "plaintext_timeout", "max_errors", "routes", "accept_proxy",
                               "trusted_proxies", "max_sessions_per_client", "max_new_per_client"});
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
        check_backend_name(table, "backend", *backend, table.at("backend"));
        spec.backend = std::move(*backend);
    }
    read_routes(table, spec);
    read_proxy_in(table, spec);
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
    if (auto count = table.integer("max_sessions_per_client", 0, kMaxPerClient)) {
        spec.max_sessions_per_client = static_cast<std::uint32_t>(*count);
    }
    if (auto rate = table.rate("max_new_per_client")) {
        spec.max_new_per_client = *rate;
    }
    read_starttls_keys(table, spec, protocol.has_value(), !table.has("tls") || mode.has_value());
    config_.listeners.push_back(std::move(spec));
}

void Loader::check_backend_name(TableReader& table, std::string_view key, const std::string& name,
                                Source at) {
    if (backend_names_.find(name) != backend_names_.end()) {
        return;
    }
    std::vector<std::string_view> names;
    for (const auto& [known, declared] : backend_names_) {
        names.push_back(known);
    }
    table.error(key, at,
                "no backend named \"" + name + "\" " +
                    (names.empty() ? "(no [[backend]] is defined)"
                                   : "(have: " + detail::join(names) + ")"));
}

// routes = { "mail.alpha.example" = "alpha", "*.beta.example" = "beta" }: names compared as
// SNI is (lower case, no trailing dot), so two spellings of one name are one route.
void Loader::read_routes(TableReader& table, ListenerSpec& spec) {
    const std::optional<std::vector<TableReader::Item>> routes = table.string_table("routes");
    if (!routes) {
        return;
    }
    for (const TableReader::Item& item : *routes) {
        const std::optional<std::string> name = route_name(item.name);
        if (!name) {
            table.error(item.key, item.at,
                        "\"" + item.name +
                            "\" is not a server name: write a DNS name (mail.example.com) or "
                            "\"*.\" and one (*.example.com, any one label)");
            continue;
        }
        check_backend_name(table, item.key, item.text, item.at);
        const auto same = std::find_if(spec.routes.begin(), spec.routes.end(),
                                       [&name](const Route& r) { return r.server_name == *name; });
        if (same != spec.routes.end()) {
            table.error(item.key, item.at,
                        "\"" + item.name + "\" is the same server name as a route on line " +
                            std::to_string(same->at.line));
            continue;
        }
        spec.routes.push_back(Route{*name, item.text, item.at});
    }
    std::sort(spec.routes.begin(), spec.routes.end(),
              [](const Route& a, const Route& b) { return a.server_name < b.server_name; });
}

// accept_proxy and trusted_proxies: one without the other is a mistake either way (a header
// from anyone, or a list that does nothing).
void Loader::read_proxy_in(TableReader& table, ListenerSpec& spec) {
    spec.accept_proxy = table.boolean("accept_proxy").value_or(false);
    if (auto proxies = table.strings("trusted_proxies", Need::Optional)) {
        for (const TableReader::Item& item : *proxies) {
            Parsed<Network> network = parse_network(item.text);
            if (!network.value) {
                table.error(item.key, item.at, std::move(network.error));
                continue;
            }
            spec.trusted_proxies.push_back(*network.value);
        }
        if (!spec.accept_proxy && table.has("trusted_proxies")) {
            table.error("trusted_proxies", table.at("trusted_proxies"),
                        "trusted_proxies only applies with accept_proxy = true");
        }
    } else if (spec.accept_proxy && !table.has("trusted_proxies")) {
        table.error("accept_proxy", table.at("accept_proxy"),
                    "accept_proxy needs trusted_proxies: the load balancers' addresses or "
                    "networks (a PROXY header from anyone else would let a client claim any "
                    "address)");
    }
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

}  // namespace postern::conf::detail
