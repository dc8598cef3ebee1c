#include "tls/policy.hpp"

#include "tls/alpn.hpp"
#include "tls/ossl.hpp"

namespace postern::tls {
namespace {

// TLS 1.2 suites: ECDHE key exchange with AEAD only (Mozilla "intermediate" set). TLS 1.3
// suites are OpenSSL's defaults, which are all AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

bool apply_policy(SSL_CTX* ctx, const conf::TlsSettings& settings, std::string& error) {
    const int min =
        settings.min_version == conf::TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
        error = ossl_errors();
        return false;
    }
    // IGNORE_UNEXPECTED_EOF: mail clients often close without close_notify; OpenSSL 3 would
    // otherwise report that EOF as an SSL_ERROR_SSL "unexpected eof while reading", and the
    // session would end as a TLS failure; with it, OpenSSL treats the EOF as a close_notify
    // (SSL_ERROR_ZERO_RETURN), which proxy/stream.cpp reads as the client's EOF.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // An idle session keeps no 16 KiB record buffers (about 33 KiB each).
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // One ticket per full handshake is what a mail client uses; OpenSSL's default of two costs
    // a second ticket's encryption and write on every handshake.
    SSL_CTX_set_num_tickets(ctx, 1);
    // On every context: OpenSSL asks the certificate's context SNI switched to, not the front.
    install_alpn(ctx);
    return true;
}

}  // namespace postern::tls
