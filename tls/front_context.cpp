#include "tls/front_context.hpp"

#include "tls/client_caps.hpp"
#include "tls/policy.hpp"
#include "tls/server_name.hpp"

#include <openssl/tls1.h>

namespace postern::tls {
namespace {

std::span<const std::uint8_t> hello_ext(SSL* ssl, unsigned type) {
    const unsigned char* data = nullptr;
    std::size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, type, &data, &len) != 1) {
        return {};
    }
    return {data, len};
}

// What the client sent is kept for the log (capped; the proxy sanitizes it when logging).
constexpr std::size_t kMaxSniKept = 255;

int on_client_hello(SSL* ssl, int* alert, void* /*arg*/) noexcept {
    Handshake* hs = handshake_of(ssl);
    if (hs == nullptr || !hs->store) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    std::optional<std::string> host;
    try {
        if (auto raw = parse_server_name_ext(hello_ext(ssl, TLSEXT_TYPE_server_name))) {
            hs->sni.assign(raw->substr(0, kMaxSniKept));
            host = normalize_host_name(*raw);  // IP literals and junk count as no SNI
            if (host) {
                hs->server_name = *host;
            }
        }
    } catch (...) {  // allocation failure: no exception may cross OpenSSL's frames
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    const unsigned char* ciphers = nullptr;
    const std::size_t ciphers_len = SSL_client_hello_get0_ciphers(ssl, &ciphers);
    const ClientCaps caps =
        read_client_caps(hello_ext(ssl, TLSEXT_TYPE_signature_algorithms), {ciphers, ciphers_len});

    const Certificate* cert = host ? hs->store->find(*host, caps) : nullptr;
    if (cert == nullptr) {
        hs->unknown_name = host.has_value();
        // Strict mode refuses names we do not hold; a client sending no usable name still gets
        // the default (mail clients and MTAs often send none).
        if (hs->strict_sni && host) {
            try {
                hs->refusal = "unknown server name refused (strict_sni)";
            } catch (...) {  // allocation failure: the alert still says why
            }
            *alert = SSL_AD_UNRECOGNIZED_NAME;
            return SSL_CLIENT_HELLO_ERROR;
        }
        cert = hs->store->fallback(caps);
    }
    // The session-id context decides which sessions may resume (RFC 6066 §3: only those made
    // under this certificate). OpenSSL 3.0's SSL_set_SSL_CTX copies the new context's only
    // while the SSL still has the old context's, so it is set here whatever happened before.
    // Session lookup (TLS 1.2 id or ticket, TLS 1.3 PSK) runs after this callback.
    if (cert == nullptr || SSL_set_SSL_CTX(ssl, cert->ctx.get()) == nullptr ||
        SSL_set_session_id_context(ssl, cert->session_id_context.data(),
                                   static_cast<unsigned>(cert->session_id_context.size())) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    hs->cert = cert;
    return SSL_CLIENT_HELLO_SUCCESS;
}

// The OpenSSL 3 manual: even with a ClientHello callback, the servername callback is needed to
// acknowledge the name the client asked for.
int on_servername(SSL* /*ssl*/, int* /*alert*/, void* /*arg*/) noexcept {
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::unique_ptr<FrontContext> FrontContext::create(const conf::TlsSettings& settings,
                                                   protocols::Protocol protocol,
                                                   const std::shared_ptr<TicketKeys>& keys,
                                                   std::string& error) {
    SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
    if (!ctx) {
        error = ossl_errors();
        return nullptr;
    }
    if (!apply_policy(ctx.get(), settings, error) || !TicketKeys::attach(keys, ctx.get(), error)) {
        return nullptr;
    }
    SSL_CTX_set_client_hello_cb(ctx.get(), &on_client_hello, nullptr);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"  // OpenSSL's macro casts the callback
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), &on_servername);
#pragma GCC diagnostic pop
    return std::make_unique<FrontContext>(std::move(ctx), protocol);
}

SslPtr FrontContext::new_ssl(Handshake& handshake) const {
    handshake.protocol = protocol_;
    SslPtr ssl{SSL_new(ctx_.get())};
    if (ssl && !attach_handshake(ssl.get(), handshake)) {
        return nullptr;
    }
    return ssl;
}

}  // namespace postern::tls
