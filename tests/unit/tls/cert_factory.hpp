#pragma once
// Test-only: writes certificates with chosen SANs, key type and validity into a temporary
// folder, self-signed or issued by a test CA, as PEM files or PKCS#12 bundles, so tls tests run
// on real files without shelling out to openssl.

#include "conf/config.hpp"
#include "tls/cert_store.hpp"
#include "tls/ossl.hpp"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace postern::tls::testing {

class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ =
            std::filesystem::temp_directory_path() /
            ("postern-tls-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::create_directories(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

inline PkeyPtr make_key(bool rsa) {
    PkeyPtr key{rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256")};
    if (!key) {
        throw std::runtime_error("key generation failed");
    }
    return key;
}

// A certificate and its key, e.g. a test CA.
struct Issuer {
    X509Ptr cert;
    PkeyPtr key;
};

inline void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) {
        throw std::runtime_error("bad extension " + value);
    }
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// A certificate for `key` naming `sans` (DNS; "*.x" for wildcards; CN = first SAN, or `cn`).
// Self-signed unless `issuer` is given. valid_days < 0: it expired that many days ago.
inline X509Ptr make_cert(EVP_PKEY* key, const std::vector<std::string>& sans, long valid_days,
                         long serial = 1, const Issuer* issuer = nullptr, bool ca = false,
                         const std::string& cn = {}) {
    constexpr long kDay = 24 * 3600;
    X509Ptr cert{X509_new()};
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()),
                    valid_days < 0 ? (valid_days - 30) * kDay : -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), valid_days * kDay);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    const std::string common = !cn.empty() ? cn : sans.empty() ? "postern test" : sans.front();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common.c_str()), -1, -1, 0);
    X509* signer = issuer != nullptr ? issuer->cert.get() : cert.get();
    X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
    add_extension(cert.get(), signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (issuer != nullptr) {
        add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid");
    }
    if (!sans.empty()) {
        std::string value;
        for (const auto& s : sans) {
            value += (value.empty() ? "DNS:" : ",DNS:") + s;
        }
        add_extension(cert.get(), signer, NID_subject_alt_name, value);
    }
    X509_sign(cert.get(), issuer != nullptr ? issuer->key.get() : key, EVP_sha256());
    return cert;
}

// A CA: self-signed root, or an intermediate when `parent` is given.
inline Issuer make_ca(const std::string& cn, const Issuer* parent = nullptr, long serial = 100) {
    Issuer ca;
    ca.key = make_key(false);
    ca.cert = make_cert(ca.key.get(), {}, 365, serial, parent, true, cn);
    return ca;
}

inline void write_pem(const std::filesystem::path& file, std::initializer_list<X509*> certs) {
    std::filesystem::create_directories(file.parent_path());
    std::unique_ptr<FILE, CFree<&fclose>> f{std::fopen(file.c_str(), "w")};
    for (X509* c : certs) {
        PEM_write_X509(f.get(), c);
    }
}

inline void write_key(const std::filesystem::path& file, EVP_PKEY* key, mode_t mode = 0600) {
    std::filesystem::create_directories(file.parent_path());
    {
        std::unique_ptr<FILE, CFree<&fclose>> f{std::fopen(file.c_str(), "w")};
        PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    }
    ::chmod(file.c_str(), mode);
}

// Writes <stem>.crt and <stem>.key (mode 0600); SANs are DNS names (with wildcards as "*.x").
inline conf::CertificateSpec write_cert(const std::filesystem::path& dir, const std::string& stem,
                                        const std::vector<std::string>& sans, EVP_PKEY* key,
                                        long valid_days = 30, long serial = 1) {
    const X509Ptr cert = make_cert(key, sans, valid_days, serial);
    conf::CertificateSpec spec;
    spec.cert = dir / (stem + ".crt");
    spec.key = dir / (stem + ".key");
    spec.key_name = "certificate[" + stem + "]";
    write_pem(spec.cert, {cert.get()});
    write_key(spec.key, key);
    return spec;
}

// A PKCS#12 bundle of key, leaf and chain. `legacy`: RC2-40 for the certificates and 3DES for
// the key, as `openssl pkcs12 -export -legacy` and old Windows exports write them; made in a
// library context of its own, so the process's default one stays without the legacy provider.
// Returns false when that provider is not installed.
inline bool write_pkcs12(const std::filesystem::path& file, EVP_PKEY* key, X509* leaf,
                         const std::vector<X509*>& chain, const char* password,
                         bool legacy = false) {
    struct Borrowed {  // sk_X509_free frees the stack, not the certificates in it
        void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_free(s); }
    };
    std::unique_ptr<STACK_OF(X509), Borrowed> ca{sk_X509_new_null()};
    for (X509* c : chain) {
        sk_X509_push(ca.get(), c);
    }
    std::unique_ptr<OSSL_LIB_CTX, CFree<&OSSL_LIB_CTX_free>> libctx{OSSL_LIB_CTX_new()};
    std::unique_ptr<OSSL_PROVIDER, CFree<&OSSL_PROVIDER_unload>> base;
    std::unique_ptr<OSSL_PROVIDER, CFree<&OSSL_PROVIDER_unload>> old;
    PKCS12* raw = nullptr;
    if (legacy) {
        base.reset(OSSL_PROVIDER_load(libctx.get(), "default"));
        old.reset(OSSL_PROVIDER_load(libctx.get(), "legacy"));
        if (!old) {
            return false;
        }
        raw = PKCS12_create_ex(password, "postern test", key, leaf, ca.get(),
                               NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                               NID_pbe_WithSHA1And40BitRC2_CBC, 0, 0, 0, libctx.get(), nullptr);
    } else {
        raw = PKCS12_create(password, "postern test", key, leaf, ca.get(), 0, 0, 0, 0, 0);
    }
    std::unique_ptr<PKCS12, CFree<&PKCS12_free>> p12{raw};
    if (!p12) {
        throw std::runtime_error("PKCS12_create failed");
    }
    std::unique_ptr<FILE, CFree<&fclose>> f{std::fopen(file.c_str(), "wb")};
    i2d_PKCS12_fp(f.get(), p12.get());
    return true;
}

// Shared by the tls test files: client capabilities, a config that only names its file and
// default, and which certificate (by file stem, "-" for none) a store serves for a name.
inline constexpr ClientCaps kEcdsa{.ecdsa = true};
inline constexpr ClientCaps kRsaOnly{.ecdsa = false};

inline conf::Config base_config(const TempDir& dir) {
    conf::Config config;
    config.file = dir.path() / "postern.toml";
    config.tls.default_certificate = "mail.default.test";
    return config;
}

inline std::string served(const CertStore& store, std::string_view host, ClientCaps caps = kEcdsa) {
    const auto* cert = store.find(host, caps);
    return cert == nullptr ? "-" : cert->data.cert_file.stem().string();
}

}  // namespace postern::tls::testing
