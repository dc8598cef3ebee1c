#include "tests/bench/tls_floor_common.hpp"

#include <openssl/err.h>
#include <openssl/rsa.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>

namespace postern::bench::tls_floor {

namespace {

constexpr const char* kServerName = "mail.bench.test";
constexpr const char* kCipherSuite = "TLS_AES_128_GCM_SHA256";
constexpr std::array<unsigned char, 7> kSessionIdContext{'p', 'o', 's', 't', 'e', 'r', 'n'};

std::string openssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        std::array<char, 256> buf{};
        ERR_error_string_n(code, buf.data(), buf.size());
        text += text.empty() ? ": " : "; ";
        text += buf.data();
    }
    return text;
}

}  // namespace

Error::Error(const std::string& what) : std::runtime_error(what + openssl_errors()) {}

EvpPkeyPtr make_key(KeyType type) {
    EvpPkeyPtr key{type == KeyType::Ecdsa ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048)};
    if (!key) {
        throw Error(type == KeyType::Ecdsa ? "cannot make an ECDSA P-256 key"
                                           : "cannot make an RSA-2048 key");
    }
    return key;
}

X509Ptr make_certificate(EVP_PKEY* key) {
    X509Ptr cert{X509_new()};
    if (!cert) {
        throw Error("cannot make a certificate");
    }
    X509* c = cert.get();
    X509_NAME* name = X509_get_subject_name(c);
    if (X509_set_version(c, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(c), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(c), 0) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(c), 24L * 3600) == nullptr ||
        X509_set_pubkey(c, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(kServerName), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(c, name) != 1 || X509_sign(c, key, EVP_sha256()) <= 0) {
        throw Error("cannot make a self-signed certificate");
    }
    return cert;
}

SslCtxPtr make_server_context(EVP_PKEY* key, X509* cert) {
    SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext.data(),
                                       kSessionIdContext.size()) != 1 ||
        SSL_CTX_use_certificate(ctx.get(), cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx.get(), key) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
        throw Error("server context");
    }
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE |
                                       SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(ctx.get(), 1);
    return ctx;
}

SslCtxPtr make_client_context(bool keep_sessions) {
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx.get(), kCipherSuite) != 1 ||
        SSL_CTX_set1_groups_list(ctx.get(), "X25519") != 1) {
        throw Error("client context");
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(ctx.get(),
                                   keep_sessions ? SSL_SESS_CACHE_CLIENT : SSL_SESS_CACHE_OFF);
    return ctx;
}

Pair open_pair(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
    std::array<int, 2> fds{};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) != 0) {
        throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
    }
    Pair p{UniqueFd{fds[0]}, SslPtr{SSL_new(client_ctx)}, UniqueFd{fds[1]},
           SslPtr{server_ctx != nullptr ? SSL_new(server_ctx) : nullptr}};
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is the call it makes.
    if (!p.client || SSL_set_fd(p.client.get(), p.client_fd.get()) != 1 ||
        SSL_ctrl(p.client.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(kServerName)) != 1) {
        throw Error("SSL_new (client)");
    }
    SSL_set_connect_state(p.client.get());
    if (server_ctx != nullptr) {
        if (!p.server || SSL_set_fd(p.server.get(), p.server_fd.get()) != 1) {
            throw Error("SSL_new (server)");
        }
        SSL_set_accept_state(p.server.get());
    }
    return p;
}

bool finished(SSL* ssl, int rc, const char* what) {
    if (rc > 0) {
        return true;
    }
    const int error = SSL_get_error(ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        return false;
    }
    throw Error(std::string(what) + " failed (SSL_get_error " + std::to_string(error) + ")");
}

void check_negotiated(SSL* server) {
    const SSL_CIPHER* cipher = SSL_get_current_cipher(server);
    if (SSL_version(server) != TLS1_3_VERSION || cipher == nullptr ||
        std::string_view(SSL_CIPHER_get_name(cipher)) != kCipherSuite ||
        SSL_get_negotiated_group(server) != NID_X25519) {
        throw Error("negotiated something other than TLS 1.3, X25519, TLS_AES_128_GCM_SHA256");
    }
}

}  // namespace postern::bench::tls_floor
