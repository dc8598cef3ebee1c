#pragma once
// One servable certificate: its chain and key loaded from PEM files into a ready SSL_CTX, plus
// what selection and `postern check` need to know about it (DNS names, key type, expiry).
// Loading checks everything that would otherwise fail at handshake time: the files parse, the
// key matches the leaf, and the leaf names at least one DNS host.

#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "tls/ossl.hpp"

namespace postern::tls {

enum class KeyType : std::uint8_t { Ecdsa, Rsa, Other };

struct Certificate {
    SslCtxPtr ctx;                   // policy applied, leaf + chain + key installed
    std::vector<std::string> names;  // normalized SAN DNS names, wildcards as "*.example.com"
    KeyType key_type = KeyType::Other;
    std::string key_description;  // "ECDSA P-256", "RSA 2048"
    std::time_t not_after = 0;
    std::string not_after_text;  // "2027-02-20 12:00:00 UTC"
    std::string subject;         // one-line subject, for the check table
    std::filesystem::path cert_file;
    std::filesystem::path key_file;
    std::string key_name;  // "certificate[1]"

    [[nodiscard]] const std::string& primary_name() const noexcept { return names.front(); }
};

struct CertificateLoad {
    std::optional<Certificate> certificate;
    std::vector<conf::ConfigError> errors;
};

// `config_file` and spec.at locate errors; `settings` is the TLS policy for the new SSL_CTX.
[[nodiscard]] CertificateLoad load_certificate(const conf::CertificateSpec& spec,
                                               const conf::TlsSettings& settings,
                                               const std::filesystem::path& config_file);

[[nodiscard]] const char* to_string(KeyType type) noexcept;  // "ECDSA" | "RSA" | "other"

}  // namespace postern::tls
