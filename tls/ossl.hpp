#pragma once
// RAII owners for the OpenSSL handles postern uses, and a helper that drains OpenSSL's error
// queue into one readable string. Every OpenSSL object in the project lives in one of these.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

namespace postern::tls {

template <auto FreeFn>
struct CFree {
    template <class T>
    void operator()(T* p) const noexcept {
        FreeFn(p);
    }
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, CFree<&SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, CFree<&SSL_free>>;
using X509Ptr = std::unique_ptr<X509, CFree<&X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, CFree<&EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, CFree<&BIO_free_all>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, CFree<&GENERAL_NAMES_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, CFree<&ASN1_TIME_free>>;

struct X509StackFree {
    void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

// Drains the thread's OpenSSL error queue: "reason (lib); reason (lib)", or `fallback` if empty.
[[nodiscard]] std::string ossl_errors(const char* fallback = "no OpenSSL error recorded");

}  // namespace postern::tls
