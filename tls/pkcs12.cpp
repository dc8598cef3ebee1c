#include "tls/pkcs12.hpp"

#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>

namespace postern::tls {
namespace {

using Pkcs12Ptr = std::unique_ptr<PKCS12, CFree<&PKCS12_free>>;
using Problem = Pkcs12Read::Problem;

// Files larger than this are not passwords (and not read whole into memory).
constexpr std::size_t kMaxPasswordBytes = 4096;

Pkcs12Read fail(Problem problem, std::string error) {
    return Pkcs12Read{std::nullopt, problem, std::move(error)};
}

struct QueuedErrors {
    std::string text;  // as ossl_errors() writes it
    bool unsupported_algorithm = false;
};

// Drains the thread's OpenSSL error queue. OpenSSL 3 reports a cipher that no loaded provider
// implements as ERR_R_UNSUPPORTED ("digital envelope routines::unsupported").
QueuedErrors drain_errors() {
    QueuedErrors out;
    for (unsigned long code = 0; (code = ERR_get_error()) != 0;) {
        if (ERR_GET_REASON(code) == ERR_R_UNSUPPORTED ||
            (ERR_GET_LIB(code) == ERR_LIB_EVP &&
             ERR_GET_REASON(code) == EVP_R_UNSUPPORTED_ALGORITHM)) {
            out.unsupported_algorithm = true;
        }
        const char* reason = ERR_reason_error_string(code);
        const char* lib = ERR_lib_error_string(code);
        out.text += out.text.empty() ? "" : "; ";
        out.text += reason != nullptr ? reason : "unknown error";
        if (lib != nullptr) {
            out.text += std::string{" ("} + lib + ")";
        }
    }
    if (out.text.empty()) {
        out.text = "no OpenSSL error recorded";
    }
    return out;
}

// Process-wide on purpose: providers belong to OpenSSL's default library context, which every
// SSL_CTX uses. Loaded once (a thread-safe static) and never unloaded, so a later reload can
// read the same bundle again. retain_fallbacks = 1 keeps the default provider active beside it.
// The legacy provider adds old ciphers to what OpenSSL can compute, not to what TLS offers:
// tls/policy.cpp still chooses the suites.
bool legacy_provider_loaded() {
    static OSSL_PROVIDER* const legacy = OSSL_PROVIDER_try_load(nullptr, "legacy", 1);
    return legacy != nullptr;
}

// Which password spelling verifies the MAC: `password` itself, or for an empty one, no password
// (nullptr) or "" (PKCS12_parse tries the same two). nullopt when none does.
std::optional<const char*> verified_password(PKCS12* p12, const std::string& password) {
    if (PKCS12_mac_present(p12) == 0) {
        return password.empty() ? nullptr : password.c_str();
    }
    if (!password.empty()) {
        if (PKCS12_verify_mac(p12, password.c_str(), static_cast<int>(password.size())) == 1) {
            return password.c_str();
        }
        return std::nullopt;
    }
    if (PKCS12_verify_mac(p12, nullptr, 0) == 1) {
        return nullptr;
    }
    if (PKCS12_verify_mac(p12, "", 0) == 1) {
        return "";
    }
    return std::nullopt;
}

}  // namespace

Pkcs12Read read_pkcs12(const std::filesystem::path& bundle, const conf::FileRead& content,
                       const std::string& password) {
    ERR_clear_error();
    const std::string name = bundle.string();
    if (!content.bytes) {
        return fail(Problem::Unreadable, "cannot open " + name + ": " + content.error);
    }
    BioPtr bio{BIO_new_mem_buf(content.bytes->data(), static_cast<int>(content.bytes->size()))};
    if (!bio) {
        return fail(Problem::Unreadable, "cannot open " + name + ": " + ossl_errors());
    }
    const Pkcs12Ptr p12{d2i_PKCS12_bio(bio.get(), nullptr)};
    if (!p12) {
        return fail(
            Problem::NotPkcs12,
            name + " is not a PKCS#12 bundle (DER, as .pfx/.p12 files are): " + ossl_errors());
    }
    // The MAC first: a wrong password then reads as one, not as a decryption failure.
    const std::optional<const char*> pass = verified_password(p12.get(), password);
    if (!pass) {
        ERR_clear_error();
        return fail(Problem::WrongPassword,
                    "wrong password for " + name +
                        (password.empty() ? " (no password given; set password_file)"
                                          : " (the bundle's MAC does not verify)"));
    }
    ERR_clear_error();

    EVP_PKEY* key = nullptr;
    X509* leaf = nullptr;
    STACK_OF(X509)* chain = nullptr;
    int parsed = PKCS12_parse(p12.get(), *pass, &key, &leaf, &chain);
    QueuedErrors errors = drain_errors();
    if (parsed != 1 && errors.unsupported_algorithm) {
        if (!legacy_provider_loaded()) {
            return fail(Problem::LegacyUnavailable,
                        name +
                            " is encrypted with a legacy algorithm (such as RC2-40) that OpenSSL "
                            "3 decrypts only with its legacy provider, and that provider cannot "
                            "be loaded (" +
                            ossl_errors("is ossl-modules/legacy.so installed?") +
                            "); re-export the bundle with a current OpenSSL (`openssl pkcs12 "
                            "-export` uses AES-256)");
        }
        parsed = PKCS12_parse(p12.get(), *pass, &key, &leaf, &chain);
        errors = drain_errors();
    }
    // Ours now; a failed PKCS12_parse has already freed them and left them null.
    Pkcs12Contents contents{PkeyPtr{key}, X509Ptr{leaf}, X509StackPtr{chain}};
    if (parsed != 1) {
        return fail(Problem::Broken, "cannot decrypt " + name + ": " + errors.text);
    }
    if (!contents.chain) {
        contents.chain.reset(sk_X509_new_null());
    }
    if (!contents.key) {
        return fail(Problem::Broken, name + " holds no private key");
    }
    // Bundles without localKeyID attributes leave the leaf among the others: find it by key.
    for (int i = 0; !contents.leaf && i < sk_X509_num(contents.chain.get()); ++i) {
        if (X509_check_private_key(sk_X509_value(contents.chain.get(), i), contents.key.get()) ==
            1) {
            contents.leaf.reset(sk_X509_delete(contents.chain.get(), i));
        }
    }
    ERR_clear_error();
    if (!contents.leaf) {
        return fail(Problem::Broken, name + " holds no certificate for its private key");
    }
    return Pkcs12Read{std::move(contents), Problem::None, {}};
}

PasswordRead read_password_file(const std::filesystem::path& file, const conf::FileRead& content) {
    if (!content.bytes) {
        return {std::nullopt, "cannot read password file " + file.string() + ": " + content.error};
    }
    if (content.bytes->size() > kMaxPasswordBytes) {
        return {std::nullopt, "password file " + file.string() + " is larger than " +
                                  std::to_string(kMaxPasswordBytes) + " bytes"};
    }
    std::string password = *content.bytes;
    if (password.ends_with('\n')) {
        password.pop_back();
        if (password.ends_with('\r')) {
            password.pop_back();
        }
    }
    return {std::move(password), {}};
}

}  // namespace postern::tls
