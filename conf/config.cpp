#include "conf/config.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <netinet/in.h>

namespace postern::conf {

const char* to_string(TlsMode mode) noexcept {
    switch (mode) {
        case TlsMode::Implicit:
            return "implicit";
        case TlsMode::StartTls:
            return "starttls";
    }
    return "unknown";
}

const char* to_string(TlsVersion version) noexcept {
    switch (version) {
        case TlsVersion::Tls12:
            return "1.2";
        case TlsVersion::Tls13:
            return "1.3";
    }
    return "unknown";
}

std::chrono::milliseconds default_idle_timeout(Protocol protocol) noexcept {
    using std::chrono::minutes;
    switch (protocol) {
        case Protocol::Imap:
            return minutes{30};
        case Protocol::Pop3:
            return minutes{10};
        case Protocol::Smtp:
            return minutes{5};
    }
    return minutes{5};
}

std::string Endpoint::to_string() const {
    // Only an IPv6 literal contains ':'; without brackets its last group would read as the port.
    if (host.find(':') != std::string::npos) {
        return "[" + host + "]:" + std::to_string(port);
    }
    return host + ":" + std::to_string(port);
}

const char* to_string(ProxyHeader header) noexcept {
    switch (header) {
        case ProxyHeader::None:
            return "none";
        case ProxyHeader::V1:
            return "v1";
        case ProxyHeader::V2:
            return "v2";
    }
    return "unknown";
}

const char* BackendSpec::identity() const noexcept {
    if (is_exec()) {
        return "exec";
    }
    switch (send_proxy) {
        case ProxyHeader::V1:
            return "proxy-v1";
        case ProxyHeader::V2:
            return "proxy-v2";
        case ProxyHeader::None:
            break;
    }
    return xclient ? "xclient" : "none";
}

bool Network::contains(std::uint8_t address_family, const std::uint8_t* address) const noexcept {
    // ::ffff:a.b.c.d is how a dual-stack listener sees an IPv4 client.
    static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (address_family == 6 && family == 4 && std::equal(kMapped.begin(), kMapped.end(), address)) {
        address += kMapped.size();
        address_family = 4;
    }
    if (address_family != family) {
        return false;
    }
    const unsigned whole = prefix / 8U;
    if (!std::equal(bytes.begin(), bytes.begin() + whole, address)) {
        return false;
    }
    const unsigned rest = prefix % 8U;
    if (rest == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xFFU << (8U - rest));
    return (address[whole] & mask) == bytes[whole];
}

std::string Network::to_string() const {
    std::array<char, INET6_ADDRSTRLEN> text{};
    inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes.data(), text.data(), text.size());
    return std::string{text.data()} + "/" + std::to_string(prefix);
}

const std::string& Config::route(const ListenerSpec& listener, std::string_view server_name) {
    if (server_name.empty() || listener.routes.empty()) {
        return listener.backend;
    }
    const auto find = [&listener](std::string_view name) -> const Route* {
        const auto it = std::lower_bound(
            listener.routes.begin(), listener.routes.end(), name,
            [](const Route& route, std::string_view n) { return route.server_name < n; });
        return it != listener.routes.end() && it->server_name == name ? &*it : nullptr;
    };
    if (const Route* exact = find(server_name)) {
        return exact->backend;
    }
    if (const auto dot = server_name.find('.'); dot != std::string_view::npos) {
        std::string wildcard{"*"};
        wildcard.append(server_name.substr(dot));
        if (const Route* wild = find(wildcard)) {
            return wild->backend;
        }
    }
    return listener.backend;
}

const BackendSpec* Config::find_backend(std::string_view name) const noexcept {
    const auto it =
        std::find_if(backends.begin(), backends.end(),
                     [name](const BackendSpec& backend) { return backend.name == name; });
    return it == backends.end() ? nullptr : &*it;
}

std::string to_string(const Rate& rate) {
    if (rate.off()) {
        return "off";
    }
    const auto ms = rate.window.count();
    std::string window;
    if (ms % 3'600'000 == 0) {
        window = std::to_string(ms / 3'600'000) + "h";
    } else if (ms % 60'000 == 0) {
        window = std::to_string(ms / 60'000) + "m";
    } else if (ms % 1000 == 0) {
        window = std::to_string(ms / 1000) + "s";
    } else {
        window = std::to_string(ms) + "ms";
    }
    return std::to_string(rate.count) + "/" + window;
}

}  // namespace postern::conf
