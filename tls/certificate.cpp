#include "tls/certificate.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>

#include "tls/policy.hpp"
#include "tls/server_name.hpp"

namespace postern::tls {
namespace {

using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, CFree<&GENERAL_NAMES_free>>;

class ErrorSink {
public:
    ErrorSink(const conf::CertificateSpec& spec, const std::filesystem::path& config_file,
              std::vector<conf::ConfigError>& out)
        : spec_(spec), config_file_(config_file), out_(out) {}

    void add(std::string_view field, std::string message) {
        out_.push_back(conf::ConfigError{.file = config_file_.string(),
                                         .line = spec_.at.line,
                                         .column = spec_.at.column,
                                         .key = spec_.key_name + "." + std::string(field),
                                         .message = std::move(message)});
    }

private:
    const conf::CertificateSpec& spec_;
    const std::filesystem::path& config_file_;
    std::vector<conf::ConfigError>& out_;
};

BioPtr open_file(const std::filesystem::path& path) {
    return BioPtr{BIO_new_file(path.c_str(), "r")};
}

std::string asn1_string(const ASN1_STRING* s) {
    const auto* data = ASN1_STRING_get0_data(s);
    return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// SAN DNS names only; the subject CN only when there is no DNS SAN at all (RFC 6125 §6.4.4).
std::vector<std::string> dns_names(X509* leaf) {
    std::vector<std::string> names;
    GeneralNamesPtr sans{static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr))};
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
            if (gn->type != GEN_DNS) {
                continue;
            }
            if (auto name = normalize_san_name(asn1_string(gn->d.dNSName))) {
                names.push_back(std::move(*name));
            }
        }
    }
    if (names.empty() && !sans) {
        const X509_NAME* subject = X509_get_subject_name(leaf);
        const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (idx >= 0) {
            const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
            if (auto name = normalize_san_name(asn1_string(cn))) {
                names.push_back(std::move(*name));
            }
        }
    }
    return names;
}

void describe_key(EVP_PKEY* key, Certificate& cert) {
    const int bits = EVP_PKEY_get_bits(key);
    switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_EC: {
            cert.key_type = KeyType::Ecdsa;
            char group[64] = {};
            std::size_t len = 0;
            if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1) {
                cert.key_description = std::string("ECDSA ") + group;
            } else {
                cert.key_description = "ECDSA " + std::to_string(bits);
            }
            // OpenSSL names P-256 "prime256v1"; admins know it as P-256.
            if (cert.key_description == "ECDSA prime256v1") {
                cert.key_description = "ECDSA P-256";
            } else if (cert.key_description == "ECDSA secp384r1") {
                cert.key_description = "ECDSA P-384";
            }
            break;
        }
        case EVP_PKEY_RSA:
            cert.key_type = KeyType::Rsa;
            cert.key_description = "RSA " + std::to_string(bits);
            break;
        default:
            cert.key_type = KeyType::Other;
            cert.key_description = std::string(EVP_PKEY_get0_type_name(key) != nullptr
                                                   ? EVP_PKEY_get0_type_name(key)
                                                   : "unknown") +
                                   " " + std::to_string(bits);
            break;
    }
}

void describe_expiry(X509* leaf, Certificate& cert) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) {
        cert.not_after = timegm(&tm);
        char text[32] = {};
        std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm);
        cert.not_after_text = text;
    }
    char subject[256] = {};
    X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof(subject));
    cert.subject = subject;
}

}  // namespace

const char* to_string(KeyType type) noexcept {
    switch (type) {
        case KeyType::Ecdsa:
            return "ECDSA";
        case KeyType::Rsa:
            return "RSA";
        case KeyType::Other:
            return "other";
    }
    return "other";
}

CertificateLoad load_certificate(const conf::CertificateSpec& spec,
                                 const conf::TlsSettings& settings,
                                 const std::filesystem::path& config_file) {
    CertificateLoad result;
    ErrorSink errors{spec, config_file, result.errors};
    ERR_clear_error();

    BioPtr cert_bio = open_file(spec.cert);
    if (!cert_bio) {
        errors.add("cert", "cannot open " + spec.cert.string() + ": " + ossl_errors());
        return result;
    }
    X509Ptr leaf{PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)};
    if (!leaf) {
        errors.add("cert", "no PEM certificate in " + spec.cert.string() + ": " + ossl_errors());
        return result;
    }
    X509StackPtr chain{sk_X509_new_null()};
    while (X509* next = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
        sk_X509_push(chain.get(), next);
    }
    ERR_clear_error();  // the loop ends on "no start line", which is not an error

    BioPtr key_bio = open_file(spec.key);
    if (!key_bio) {
        errors.add("key", "cannot open " + spec.key.string() + ": " + ossl_errors());
        return result;
    }
    PkeyPtr key{PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)};
    if (!key) {
        errors.add("key", "no PEM private key in " + spec.key.string() + ": " + ossl_errors());
        return result;
    }
    if (X509_check_private_key(leaf.get(), key.get()) != 1) {
        ERR_clear_error();
        errors.add("key", "private key " + spec.key.string() +
                              " does not match the certificate in " + spec.cert.string());
        return result;
    }

    Certificate cert;
    cert.names = dns_names(leaf.get());
    if (cert.names.empty()) {
        errors.add("cert", "certificate in " + spec.cert.string() +
                               " names no DNS host in its subjectAltName");
        return result;
    }
    describe_key(key.get(), cert);
    describe_expiry(leaf.get(), cert);
    cert.cert_file = spec.cert;
    cert.key_file = spec.key;
    cert.key_name = spec.key_name;

    cert.ctx.reset(SSL_CTX_new(TLS_server_method()));
    std::string policy_error;
    if (!cert.ctx || !apply_policy(cert.ctx.get(), settings, policy_error)) {
        errors.add("cert", "cannot create a TLS context: " +
                               (policy_error.empty() ? ossl_errors() : policy_error));
        return result;
    }
    // use_certificate and use_PrivateKey take their own references; set1_chain copies.
    if (SSL_CTX_use_certificate(cert.ctx.get(), leaf.get()) != 1 ||
        SSL_CTX_use_PrivateKey(cert.ctx.get(), key.get()) != 1 ||
        SSL_CTX_set1_chain(cert.ctx.get(), chain.get()) != 1) {
        errors.add("cert", "OpenSSL refused the certificate in " + spec.cert.string() + ": " +
                               ossl_errors());
        return result;
    }
    result.certificate = std::move(cert);
    return result;
}

}  // namespace postern::tls
