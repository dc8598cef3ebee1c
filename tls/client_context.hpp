#pragma once
// The client side of TLS, for `postern probe`: one SSL_CTX (TLS 1.2 or later, no
// renegotiation) that verifies the server's chain against a trust store but finishes the
// handshake either way, so the caller reads SSL_get_verify_result() and reports what failed;
// and the SSL for one connection, with its SNI.

#include "tls/ossl.hpp"

#include <memory>
#include <string>

namespace postern::tls {

class ClientContext {
public:
    // Null with `error` set ("cannot create a TLS context: ...") when OpenSSL refuses.
    [[nodiscard]] static std::unique_ptr<ClientContext> create(std::string& error);

    // Trust anchors from the PEM file `cafile`, or the system store when it is empty. False
    // with OpenSSL's reason in `error`.
    [[nodiscard]] bool load_trust(const std::string& cafile, std::string& error);

    // A new client SSL on `fd`, which it does not own, sending `sni` as server_name unless it is
    // empty (RFC 6066 §3: never an IP literal). Null with `error` set.
    [[nodiscard]] SslPtr new_ssl(int fd, const std::string& sni, std::string& error) const;

    explicit ClientContext(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}

private:
    SslCtxPtr ctx_;
};

}  // namespace postern::tls
