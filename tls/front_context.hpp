#pragma once
// The per-listener "front" SSL_CTX every client handshake starts on. Its ClientHello callback
// reads the server_name and signature_algorithms extensions straight from the ClientHello
// (SSL_get_servername is not reliable that early), asks the session's CertStore snapshot for
// a certificate, and switches the SSL to that certificate's context, and to its session-id
// context, so a session resumes only under the certificate it was made with (RFC 6066 §3).
// Session tickets are keyed on this front context, which OpenSSL uses for tickets whatever
// context SNI switched to. ALPN is checked against the listener's protocol (tls/alpn.hpp).

#include "conf/config.hpp"
#include "tls/cert_store.hpp"
#include "tls/handshake.hpp"
#include "tls/ossl.hpp"
#include "tls/ticket_keys.hpp"

#include <memory>
#include <string>

namespace postern::tls {

class FrontContext {
public:
    // Null with `error` set when OpenSSL refuses the policy. `protocol` is the listener's (the
    // ALPN id it accepts). Tickets are sealed with `keys`, which every front context of the
    // process shares (a ticket from one worker resumes on another).
    [[nodiscard]] static std::unique_ptr<FrontContext> create(
        const conf::TlsSettings& settings, protocols::Protocol protocol,
        const std::shared_ptr<TicketKeys>& keys, std::string& error);

    // A new server-side SSL whose callbacks consult `handshake`, which must outlive the SSL's
    // handshake; sets handshake.protocol to the listener's.
    [[nodiscard]] SslPtr new_ssl(Handshake& handshake) const;

    FrontContext(SslCtxPtr ctx, protocols::Protocol protocol)
        : ctx_(std::move(ctx)), protocol_(protocol) {}

private:
    SslCtxPtr ctx_;
    protocols::Protocol protocol_;
};

}  // namespace postern::tls
