#include "conf/config.hpp"

#include <algorithm>

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

const BackendSpec* Config::find_backend(std::string_view name) const noexcept {
    const auto it =
        std::find_if(backends.begin(), backends.end(),
                     [name](const BackendSpec& backend) { return backend.name == name; });
    return it == backends.end() ? nullptr : &*it;
}

}  // namespace postern::conf
