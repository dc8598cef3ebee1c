#pragma once
// An immutable snapshot of every certificate postern may serve, indexed by DNS name.
// CertStore::build loads and validates everything or reports every error; a built store is only
// read afterwards, shared by all sessions through std::shared_ptr<const CertStore>.
//
// Lookup (RFC 6125 §6.4.3, as browsers and mail clients apply it): exact name first, then the
// wildcard covering exactly one more label ("*.example.com" covers "a.example.com", not
// "a.b.example.com" nor "example.com"). Two hash maps, so the cost does not grow with the
// number of certificates. Each name holds up to one ECDSA and one RSA certificate; for two of
// the same type, the one that expires last wins (a renewed certificate beside the old one;
// Envoy keeps the first instead, but an admin adding the renewal expects it to be served).
//
// Sources: the [[certificate]] entries in config order, then tls.certificates_dir's subfolders
// by name (scanned on every build). An expired certificate is not served for a name that a
// valid certificate covers (exactly, or by wildcard for an exact name), whatever the key types:
// a valid certificate of the other type beats one every client rejects. It is kept for names
// nothing else covers, so clients see an expiry error instead of the wrong host name.

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "conf/file_snapshot.hpp"
#include "tls/certificate.hpp"
#include "tls/client_caps.hpp"

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace postern::tls {

class CertStore {
public:
    struct BuildResult {
        std::shared_ptr<const CertStore> store;  // null when errors is not empty
        std::vector<conf::ConfigError> errors;
    };

    // Loads every certificate from `files` (conf/file_snapshot.hpp: what the config named, as
    // read then; never the disk once sealed); `now` decides which have expired. Reports every
    // error.
    [[nodiscard]] static BuildResult build(const conf::Config& config,
                                           const conf::FileSnapshot& files,
                                           std::time_t now = std::time(nullptr));
    // Same, reading the files from the disk now (tools and tests).
    [[nodiscard]] static BuildResult build(const conf::Config& config,
                                           std::time_t now = std::time(nullptr));

    // `host` must be normalized (tls::normalize_host_name). Null when no certificate covers it.
    [[nodiscard]] const Certificate* find(std::string_view host, ClientCaps caps) const noexcept;

    // The certificate for tls.default_certificate; never null in a built store.
    [[nodiscard]] const Certificate* fallback(ClientCaps caps) const noexcept;

    // Every loaded certificate, served or not, in load order.
    [[nodiscard]] const std::vector<std::unique_ptr<Certificate>>& certificates() const noexcept {
        return certs_;
    }

    // The certificate served for `san` (a name as in Certificate::names, "*.example.com" for a
    // wildcard) to clients wanting `type` (Other shares RSA's slot); null when none is. Lets
    // `check` tell a shadowed certificate from the served one.
    [[nodiscard]] const Certificate* served_for(std::string_view san, KeyType type) const noexcept;

private:
    struct ByKeyType {
        const Certificate* ecdsa = nullptr;
        const Certificate* rsa = nullptr;
        [[nodiscard]] const Certificate* pick(ClientCaps caps) const noexcept;
        void offer(const Certificate* cert) noexcept;
        [[nodiscard]] const Certificate* slot(KeyType type) const noexcept {
            return type == KeyType::Ecdsa ? ecdsa : rsa;
        }
    };
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    using NameMap = std::unordered_map<std::string, ByKeyType, StringHash, std::equal_to<>>;

    [[nodiscard]] const ByKeyType* lookup(std::string_view host) const noexcept;
    void withhold_covered_names(Certificate& expired) const;
    void index_name(const std::string& name, const Certificate* cert);

    std::vector<std::unique_ptr<Certificate>> certs_;  // owns the SSL_CTXs; stable addresses
    NameMap exact_;                                    // "mail.example.com" -> certificates
    NameMap wildcard_;                                 // ".example.com"     -> certificates
    ByKeyType default_;
};

}  // namespace postern::tls
