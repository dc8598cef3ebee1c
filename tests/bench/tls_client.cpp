#include "tests/bench/tls_client.hpp"

#include <openssl/err.h>

#include <array>

namespace postern::bench {
namespace {

std::string drain_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        std::array<char, 256> buf{};
        ERR_error_string_n(code, buf.data(), buf.size());
        if (!text.empty()) {
            text += "; ";
        }
        text += buf.data();
    }
    return text.empty() ? "unknown OpenSSL error" : text;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) noexcept {
    auto* store = static_cast<SessionStore*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (store == nullptr) {
        return 0;  // OpenSSL keeps ownership
    }
    store->put(session);
    return 1;  // we took ownership
}

const char* sigalgs(KeyPreference key) {
    switch (key) {
        case KeyPreference::Ecdsa:
            return "ecdsa_secp256r1_sha256";
        case KeyPreference::Rsa:
            // TLS 1.3 signs handshakes with RSA-PSS only; PKCS#1 v1.5 is listed for certificate
            // signatures (RFC 8446 §4.2.3), as RSA-only clients do. HAProxy's certificate choice
            // looks for it.
            return "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"
                   "rsa_pkcs1_sha256:rsa_pkcs1_sha384:rsa_pkcs1_sha512";
        case KeyPreference::Any:
            return nullptr;
    }
    return nullptr;
}

}  // namespace

SslCtxPtr make_client_context(const ClientTlsOptions& options, SessionStore* store,
                              std::string& error) {
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    const char* algs = sigalgs(options.key);
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx.get(), options.ciphersuites.c_str()) != 1 ||
        SSL_CTX_set1_groups_list(ctx.get(), options.groups.c_str()) != 1 ||
        (algs != nullptr && SSL_CTX_set1_sigalgs_list(ctx.get(), algs) != 1)) {
        error = drain_errors();
        return nullptr;
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_mode(ctx.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (options.release_buffers) {
        SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    }
    if (store != nullptr) {
        SSL_CTX_set_app_data(ctx.get(), store);
        SSL_CTX_set_session_cache_mode(ctx.get(),
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx.get(), &on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    }
    return ctx;
}

}  // namespace postern::bench
