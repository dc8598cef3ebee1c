#pragma once
// Test-only: writes self-signed certificates with chosen SANs, key type and validity into a
// temporary folder, so tls tests run on real PEM files without shelling out to openssl.

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "tls/ossl.hpp"

namespace postern::tls::testing {

class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ = std::filesystem::temp_directory_path() /
                ("postern-tls-test-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter++));
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

// Writes <stem>.crt and <stem>.key; SANs are DNS names (with wildcards as "*.x").
inline conf::CertificateSpec write_cert(const std::filesystem::path& dir, const std::string& stem,
                                        const std::vector<std::string>& sans, EVP_PKEY* key,
                                        long valid_days = 30, long serial = 1) {
    X509Ptr cert{X509_new()};
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), valid_days * 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    const std::string cn = sans.empty() ? stem : sans.front();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    if (!sans.empty()) {
        std::string value;
        for (const auto& s : sans) {
            value += (value.empty() ? "DNS:" : ",DNS:") + s;
        }
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
        X509_EXTENSION* ext =
            X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, value.c_str());
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(cert.get(), key, EVP_sha256());

    conf::CertificateSpec spec;
    spec.cert = dir / (stem + ".crt");
    spec.key = dir / (stem + ".key");
    spec.key_name = "certificate[" + stem + "]";
    FILE* f = std::fopen(spec.cert.c_str(), "w");
    PEM_write_X509(f, cert.get());
    std::fclose(f);
    f = std::fopen(spec.key.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    return spec;
}

}  // namespace postern::tls::testing
