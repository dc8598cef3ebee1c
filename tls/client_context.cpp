#include "tls/client_context.hpp"

#include <openssl/err.h>

namespace postern::tls {

std::unique_ptr<ClientContext> ClientContext::create(std::string& error) {
    ERR_clear_error();
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
        error = "cannot create a TLS context: " + ossl_errors();
        return nullptr;
    }
    // Verify, but finish the handshake either way: the caller reports what failed.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    return std::make_unique<ClientContext>(std::move(ctx));
}

bool ClientContext::load_trust(const std::string& cafile, std::string& error) {
    ERR_clear_error();
    const int loaded = cafile.empty() ? SSL_CTX_set_default_verify_paths(ctx_.get())
                                      : SSL_CTX_load_verify_file(ctx_.get(), cafile.c_str());
    if (loaded != 1) {
        error = ossl_errors();
        return false;
    }
    return true;
}

SslPtr ClientContext::new_ssl(int fd, const std::string& sni, std::string& error) const {
    ERR_clear_error();
    SslPtr ssl{SSL_new(ctx_.get())};
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is the call it makes.
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 ||
        (!sni.empty() &&
         SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                  const_cast<char*>(sni.c_str())) != 1)) {
        error = ossl_errors();
        return nullptr;
    }
    return ssl;
}

}  // namespace postern::tls
