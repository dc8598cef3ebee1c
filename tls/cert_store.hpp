#pragma once
// An immutable snapshot of every certificate postern may serve, indexed by DNS name.
// CertStore::build loads and validates everything or reports every error; a built store is only
// read afterwards, shared by all sessions through std::shared_ptr<const CertStore>.
//
// Lookup (RFC 6125 §6.4.3, as browsers and mail clients apply it): exact name first, then the
// wildcard covering exactly one more label ("*.example.com" covers "a.example.com", not
// "a.b.example.com" nor "example.com"). Two hash maps, so the cost does not grow with the
// number of certificates. Each name holds up to one ECDSA and one RSA certificate; for two of
// the same type, the one that expires last wins (a renewed certificate beside the old one).

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "tls/certificate.hpp"
#include "tls/client_caps.hpp"

namespace postern::tls {

class CertStore {
public:
    struct BuildResult {
        std::shared_ptr<const CertStore> store;  // null when errors is not empty
        std::vector<conf::ConfigError> errors;
    };

    [[nodiscard]] static BuildResult build(const conf::Config& config);

    // `host` must be normalized (tls::normalize_host_name). Null when no certificate covers it.
    [[nodiscard]] const Certificate* find(std::string_view host, ClientCaps caps) const noexcept;

    // The certificate for tls.default_certificate; never null in a built store.
    [[nodiscard]] const Certificate* fallback(ClientCaps caps) const noexcept;

    [[nodiscard]] const std::vector<std::unique_ptr<Certificate>>& certificates() const noexcept {
        return certs_;
    }

private:
    struct ByKeyType {
        const Certificate* ecdsa = nullptr;
        const Certificate* rsa = nullptr;
        [[nodiscard]] const Certificate* pick(ClientCaps caps) const noexcept;
        void offer(const Certificate* cert) noexcept;
    };
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    using NameMap = std::unordered_map<std::string, ByKeyType, StringHash, std::equal_to<>>;

    [[nodiscard]] const ByKeyType* lookup(std::string_view host) const noexcept;

    std::vector<std::unique_ptr<Certificate>> certs_;  // owns the SSL_CTXs; stable addresses
    NameMap exact_;                                    // "mail.example.com" -> certificates
    NameMap wildcard_;                                 // ".example.com"     -> certificates
    ByKeyType default_;
};

}  // namespace postern::tls
