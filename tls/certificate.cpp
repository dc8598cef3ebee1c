#include "tls/certificate.hpp"

#include "tls/pkcs12.hpp"
#include "tls/policy.hpp"
#include "tls/server_name.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstdio>

namespace postern::tls {
namespace {

using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, CFree<&GENERAL_NAMES_free>>;

class ErrorSink {
public:
    ErrorSink(const conf::CertificateSpec& spec, const std::filesystem::path& config_file,
              std::vector<conf::ConfigError>& out)
        : spec_(spec), config_file_(config_file), out_(out) {}

    void add(std::string_view field, std::string message) {
        // A certificates_dir subfolder has no keys of its own; its messages name the file.
        std::string key = spec_.origin == conf::CertificateOrigin::Folder
                              ? spec_.key_name
                              : spec_.key_name + "." + std::string(field);
        out_.push_back(conf::ConfigError{.file = config_file_.string(),
                                         .line = spec_.at.line,
                                         .column = spec_.at.column,
                                         .key = std::move(key),
                                         .message = std::move(message)});
    }

private:
    const conf::CertificateSpec& spec_;
    const std::filesystem::path& config_file_;
    std::vector<conf::ConfigError>& out_;
};

// What a file yielded: the key, the certificate for it, and the rest of the chain.
struct Material {
    PkeyPtr key;
    X509Ptr leaf;
    X509StackPtr chain;
    std::size_t leaf_index = 0;
    std::string first_subject;
    bool first_is_ca = false;
};

BioPtr open_file(const std::filesystem::path& path) {
    return BioPtr{BIO_new_file(path.c_str(), "r")};
}

std::string subject_of(X509* cert) {
    std::array<char, 256> subject{};
    X509_NAME_oneline(X509_get_subject_name(cert), subject.data(), subject.size());
    return subject.data();
}

// PEM password callback: postern never prompts (it may have no terminal, and must not block).
int refuse_password(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*user*/) {
    return -1;
}

std::optional<Material> read_pem(const conf::CertificateSpec& spec, ErrorSink& errors) {
    BioPtr cert_bio = open_file(spec.cert);
    if (!cert_bio) {
        errors.add("cert", "cannot open " + spec.cert.string() + ": " + ossl_errors());
        return std::nullopt;
    }
    std::vector<X509Ptr> certs;
    while (X509* next = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
        certs.emplace_back(next);
    }
    if (certs.empty()) {
        errors.add("cert", "no PEM certificate in " + spec.cert.string() + ": " + ossl_errors());
        return std::nullopt;
    }
    ERR_clear_error();  // the loop ends on "no start line", which is not an error

    BioPtr key_bio = open_file(spec.key);
    if (!key_bio) {
        errors.add("key", "cannot open " + spec.key.string() + ": " + ossl_errors());
        return std::nullopt;
    }
    Material m;
    m.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, &refuse_password, nullptr));
    if (!m.key) {
        const unsigned long last = ERR_peek_last_error();
        if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_BAD_PASSWORD_READ) {
            ERR_clear_error();
            errors.add("key", spec.key.string() +
                                  " is an encrypted private key, and postern asks for no "
                                  "passwords: decrypt it (openssl pkey -in KEY -out NEW), or use "
                                  "a pkcs12 bundle with a password_file");
        } else {
            errors.add("key", "no PEM private key in " + spec.key.string() + ": " + ossl_errors());
        }
        return std::nullopt;
    }
    // The leaf is the certificate for the key. It belongs first; a file that starts with an
    // intermediate still works, served leaf first, and `check` says so.
    const auto leaf = std::find_if(certs.begin(), certs.end(), [&](const X509Ptr& c) {
        return X509_check_private_key(c.get(), m.key.get()) == 1;
    });
    ERR_clear_error();
    if (leaf == certs.end()) {
        errors.add("key", "private key " + spec.key.string() + " does not match " +
                              (certs.size() == 1 ? std::string{"the certificate"}
                                                 : "any of the " + std::to_string(certs.size()) +
                                                       " certificates") +
                              " in " + spec.cert.string());
        return std::nullopt;
    }
    m.leaf_index = static_cast<std::size_t>(leaf - certs.begin());
    if (m.leaf_index != 0) {
        m.first_subject = subject_of(certs.front().get());
        m.first_is_ca = X509_check_ca(certs.front().get()) != 0;
    }
    m.leaf = std::move(*leaf);
    m.chain.reset(sk_X509_new_null());
    for (X509Ptr& c : certs) {
        if (c) {
            // The stack takes ownership.
            if (sk_X509_push(m.chain.get(), c.get()) == 0) {
                errors.add("cert", "out of memory reading " + spec.cert.string());
                return std::nullopt;
            }
            (void)c.release();
        }
    }
    return m;
}

std::optional<Material> read_bundle(const conf::CertificateSpec& spec, ErrorSink& errors) {
    std::string password;
    if (!spec.password_file.empty()) {
        PasswordRead read = read_password_file(spec.password_file);
        if (!read.password) {
            errors.add("password_file", std::move(read.error));
            return std::nullopt;
        }
        password = std::move(*read.password);
    }
    Pkcs12Read read = read_pkcs12(spec.pkcs12, password);
    OPENSSL_cleanse(password.data(), password.size());
    if (!read.contents) {
        const bool blame_password =
            read.problem == Pkcs12Read::Problem::WrongPassword && !spec.password_file.empty();
        errors.add(blame_password ? "password_file" : "pkcs12", std::move(read.error));
        return std::nullopt;
    }
    Material m;
    m.key = std::move(read.contents->key);
    m.leaf = std::move(read.contents->leaf);
    m.chain = std::move(read.contents->chain);
    return m;
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
            std::array<char, 64> group{};
            std::size_t len = 0;
            if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &len) == 1) {
                cert.key_description = std::string("ECDSA ") + group.data();
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
            cert.key_description =
                std::string(EVP_PKEY_get0_type_name(key) != nullptr ? EVP_PKEY_get0_type_name(key)
                                                                    : "unknown") +
                " " + std::to_string(bits);
            break;
    }
}

void describe_expiry(X509* leaf, Certificate& cert) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) {
        cert.not_after = timegm(&tm);
        std::array<char, 32> text{};
        const std::size_t length =
            std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S UTC", &tm);
        cert.not_after_text.assign(text.data(), length);
    }
    cert.subject = subject_of(leaf);
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

    const bool pkcs12 = !spec.pkcs12.empty();
    std::optional<Material> m = pkcs12 ? read_bundle(spec, errors) : read_pem(spec, errors);
    if (!m) {
        return result;
    }
    const std::filesystem::path& cert_file = pkcs12 ? spec.pkcs12 : spec.cert;
    const char* cert_field = pkcs12 ? "pkcs12" : "cert";

    Certificate cert;
    cert.names = dns_names(m->leaf.get());
    if (cert.names.empty()) {
        errors.add(cert_field, "certificate in " + cert_file.string() +
                                   " names no DNS host in its subjectAltName");
        return result;
    }
    describe_key(m->key.get(), cert);
    describe_expiry(m->leaf.get(), cert);
    cert.cert_file = cert_file;
    cert.key_file = pkcs12 ? spec.pkcs12 : spec.key;
    cert.key_name = spec.key_name;
    cert.password_file = spec.password_file;
    cert.from_pkcs12 = pkcs12;
    cert.origin = spec.origin;
    cert.leaf_index = m->leaf_index;
    cert.first_subject = std::move(m->first_subject);
    cert.first_is_ca = m->first_is_ca;

    cert.ctx.reset(SSL_CTX_new(TLS_server_method()));
    std::string policy_error;
    if (!cert.ctx || !apply_policy(cert.ctx.get(), settings, policy_error)) {
        errors.add(cert_field, "cannot create a TLS context: " +
                                   (policy_error.empty() ? ossl_errors() : policy_error));
        return result;
    }
    // use_certificate and use_PrivateKey take their own references; set1_chain copies.
    if (SSL_CTX_use_certificate(cert.ctx.get(), m->leaf.get()) != 1 ||
        SSL_CTX_use_PrivateKey(cert.ctx.get(), m->key.get()) != 1 ||
        SSL_CTX_set1_chain(cert.ctx.get(), m->chain.get()) != 1) {
        errors.add(cert_field, "OpenSSL refused the certificate in " + cert_file.string() + ": " +
                                   ossl_errors());
        return result;
    }
    result.certificate = std::move(cert);
    return result;
}

}  // namespace postern::tls
