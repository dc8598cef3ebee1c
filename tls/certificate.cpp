#include "tls/certificate.hpp"

#include "tls/pkcs12.hpp"
#include "tls/policy.hpp"
#include "tls/server_name.hpp"
#include "tls/x509_text.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>

namespace postern::tls {
namespace {

static_assert(sizeof(Certificate::session_id_context) <= SSL_MAX_SID_CTX_LENGTH);

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

// A read-only memory BIO over the snapshot's bytes (which outlive it); null with `error` set
// when the snapshot could not read the file.
BioPtr open_file(const conf::FileSnapshot& files, const std::filesystem::path& path,
                 std::string& error) {
    const conf::FileRead& read = files.file(path);
    if (!read.bytes) {
        error = read.error;
        return nullptr;
    }
    BioPtr bio{BIO_new_mem_buf(read.bytes->data(), static_cast<int>(read.bytes->size()))};
    if (!bio) {
        error = ossl_errors();
    }
    return bio;
}

// PEM password callback: postern never prompts (it may have no terminal, and must not block).
int refuse_password(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*user*/) {
    return -1;
}

std::optional<Material> read_pem(const conf::CertificateSpec& spec, const conf::FileSnapshot& files,
                                 ErrorSink& errors) {
    std::string open_error;
    BioPtr cert_bio = open_file(files, spec.cert, open_error);
    if (!cert_bio) {
        errors.add("cert", "cannot open " + spec.cert.string() + ": " + open_error);
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

    BioPtr key_bio = open_file(files, spec.key, open_error);
    if (!key_bio) {
        errors.add("key", "cannot open " + spec.key.string() + ": " + open_error);
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
        m.first_subject = subject_text(certs.front().get());
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

std::optional<Material> read_bundle(const conf::CertificateSpec& spec,
                                    const conf::FileSnapshot& files, ErrorSink& errors) {
    std::string password;
    if (!spec.password_file.empty()) {
        PasswordRead read = read_password_file(spec.password_file, files.file(spec.password_file));
        if (!read.password) {
            errors.add("password_file", std::move(read.error));
            return std::nullopt;
        }
        password = std::move(*read.password);
    }
    Pkcs12Read read = read_pkcs12(spec.pkcs12, files.file(spec.pkcs12), password);
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

// SAN DNS names only; the subject CN only when there is no SAN extension at all
// (RFC 6125 §6.4.4).
std::vector<std::string> dns_names(const X509* leaf) {
    const SubjectAltNames sans = subject_alt_names(leaf);
    std::vector<std::string> written = sans.dns;
    if (!sans.present) {
        if (auto cn = common_name(leaf)) {
            written.push_back(std::move(*cn));
        }
    }
    std::vector<std::string> names;
    for (const auto& name : written) {
        if (auto normalized = normalize_san_name(name)) {
            names.push_back(std::move(*normalized));
        }
    }
    return names;
}

void describe_key(EVP_PKEY* key, Certificate& cert) {
    std::string& description = cert.data.key_description;
    const int bits = EVP_PKEY_get_bits(key);
    switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_EC: {
            cert.key_type = KeyType::Ecdsa;
            std::array<char, 64> group{};
            std::size_t len = 0;
            if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &len) == 1) {
                description = std::string("ECDSA ") + group.data();
            } else {
                description = "ECDSA " + std::to_string(bits);
            }
            // OpenSSL names P-256 "prime256v1"; admins know it as P-256.
            if (description == "ECDSA prime256v1") {
                description = "ECDSA P-256";
            } else if (description == "ECDSA secp384r1") {
                description = "ECDSA P-384";
            }
            break;
        }
        case EVP_PKEY_RSA:
            cert.key_type = KeyType::Rsa;
            description = "RSA " + std::to_string(bits);
            break;
        default:
            cert.key_type = KeyType::Other;
            description =
                std::string(EVP_PKEY_get0_type_name(key) != nullptr ? EVP_PKEY_get0_type_name(key)
                                                                    : "unknown") +
                " " + std::to_string(bits);
            break;
    }
}

}  // namespace

std::string CertificateData::not_after_text() const {
    return time_text(X509_get0_notAfter(leaf.get()));
}

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
                                 const std::filesystem::path& config_file,
                                 const conf::FileSnapshot& files) {
    CertificateLoad result;
    ErrorSink errors{spec, config_file, result.errors};
    ERR_clear_error();

    const bool pkcs12 = !spec.pkcs12.empty();
    std::optional<Material> m =
        pkcs12 ? read_bundle(spec, files, errors) : read_pem(spec, files, errors);
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
    cert.not_after = to_time_t(X509_get0_notAfter(m->leaf.get())).value_or(0);
    CertificateData& data = cert.data;
    data.cert_file = cert_file;
    data.key_file = pkcs12 ? spec.pkcs12 : spec.key;
    data.key_name = spec.key_name;
    data.password_file = spec.password_file;
    data.from_pkcs12 = pkcs12;
    data.origin = spec.origin;
    data.leaf_index = m->leaf_index;
    data.first_subject = std::move(m->first_subject);
    data.first_is_ca = m->first_is_ca;

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
    // RFC 6066 §3: a session belongs to the certificate it was made under. OpenSSL resumes a
    // session (ticket or id) only in the session-id context it was made in, so each leaf gets
    // its own: a ticket from mail.a.example offered under SNI mail.b.example gets a full
    // handshake with b's certificate. A renewed leaf is a new context; an unchanged one
    // reloaded is not, so its sessions survive a reload.
    unsigned int digest_len = 0;
    if (X509_digest(m->leaf.get(), EVP_sha256(), cert.session_id_context.data(), &digest_len) !=
            1 ||
        digest_len != cert.session_id_context.size() ||
        SSL_CTX_set_session_id_context(cert.ctx.get(), cert.session_id_context.data(),
                                       digest_len) != 1) {
        errors.add(cert_field, "cannot derive a session context from " + cert_file.string() + ": " +
                                   ossl_errors());
        return result;
    }
    data.leaf = std::move(m->leaf);
    data.chain = std::move(m->chain);
    result.certificate = std::move(cert);
    return result;
}

}  // namespace postern::tls
