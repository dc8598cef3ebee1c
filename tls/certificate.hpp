#pragma once
// One servable certificate, loaded from PEM files or a PKCS#12 bundle, in two parts kept apart
// as HAProxy keeps its certificate data as read from files apart from the SSL_CTX built from
// it: what is served (the ready SSL_CTX, the DNS names, key type and expiry that selection
// needs) and what the files held (the certificates, key description and file layout that
// `postern check` and tls/cert_checks.hpp report). Loading checks everything that would
// otherwise fail at handshake time: the files parse, a certificate in the file matches the key,
// and that leaf names at least one DNS host. Softer problems (chain order, expiry, file modes)
// are left to tls/cert_checks.hpp. Encrypted PEM keys are refused, never prompted for.

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "conf/file_snapshot.hpp"
#include "tls/ossl.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace postern::tls {

enum class KeyType : std::uint8_t { Ecdsa, Rsa, Other };

// The certificate as read from its files; handshakes never look at it.
struct CertificateData {
    X509Ptr leaf;                         // the certificate for the key
    X509StackPtr chain;                   // the file's other certificates, in file order
    std::string key_description;          // "ECDSA P-256", "RSA 2048"
    std::filesystem::path cert_file;      // the PEM chain, or the PKCS#12 bundle
    std::filesystem::path key_file;       // the PEM key, or the PKCS#12 bundle again
    std::string key_name;                 // "certificate[1]", or "tls.certificates_dir"
    std::filesystem::path password_file;  // PKCS#12 only; may be empty
    bool from_pkcs12 = false;
    conf::CertificateOrigin origin = conf::CertificateOrigin::Entry;
    // Where the key's certificate sat among the file's certificates: 0, as it should, or later
    // when something else came first (it is served first anyway). PEM files only.
    std::size_t leaf_index = 0;
    std::string first_subject;  // the file's first certificate's subject when leaf_index > 0
    bool first_is_ca = false;   // ... and whether that one is a CA (basicConstraints CA:TRUE)

    // The leaf's notAfter as tls/x509_text.hpp writes it: "2027-02-20 12:00:00 UTC".
    [[nodiscard]] std::string not_after_text() const;
};

struct Certificate {
    SslCtxPtr ctx;                   // policy applied, leaf + chain + key installed
    std::vector<std::string> names;  // normalized SAN DNS names, wildcards as "*.example.com"
    KeyType key_type = KeyType::Other;
    std::time_t not_after = 0;
    // SHA-256 of the leaf (DER): this certificate's session-id context, set on ctx and on every
    // SSL switched to it (tls/front_context.cpp). SSL_MAX_SID_CTX_LENGTH is 32.
    std::array<unsigned char, 32> session_id_context{};
    // Set by CertStore::build: this certificate has expired, and a valid one covers these of its
    // names, so the store does not serve it for them.
    std::vector<std::string> withheld_names;
    CertificateData data;

    [[nodiscard]] const std::string& primary_name() const noexcept { return names.front(); }
};

struct CertificateLoad {
    std::optional<Certificate> certificate;
    std::vector<conf::ConfigError> errors;
};

// `config_file` and spec.at locate errors; `settings` is the TLS policy for the new SSL_CTX.
// The files' bytes come from `files`, never from the disk.
// Errors are keyed "<key_name>.<field>" (cert, key, pkcs12, password_file) for [[certificate]]
// entries and "tls.certificates_dir" for its subfolders; each message names the file. Safe to
// call from several threads at once.
[[nodiscard]] CertificateLoad load_certificate(const conf::CertificateSpec& spec,
                                               const conf::TlsSettings& settings,
                                               const std::filesystem::path& config_file,
                                               const conf::FileSnapshot& files);

[[nodiscard]] const char* to_string(KeyType type) noexcept;  // "ECDSA" | "RSA" | "other"

}  // namespace postern::tls
