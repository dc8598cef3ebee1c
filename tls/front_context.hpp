#pragma once
// The per-listener "front" SSL_CTX every client handshake starts on. Its ClientHello callback
// reads the server_name and signature_algorithms extensions straight from the ClientHello
// (SSL_get_servername is not reliable that early), asks the session's CertStore snapshot for
// a certificate, and switches the SSL to that certificate's context, and to its session-id
// context, so a session resumes only under the certificate it was made with (RFC 6066 §3).
// Session tickets are keyed on this front context, which OpenSSL uses for tickets whatever
// context SNI switched to.

#include "conf/config.hpp"
#include "tls/cert_store.hpp"
#include "tls/ossl.hpp"
#include "tls/ticket_keys.hpp"

#include <memory>
#include <string>

namespace postern::tls {

// Per-handshake state, owned by the session and reachable from the SSL through ex_data.
struct Handshake {
    std::shared_ptr<const CertStore> store;  // snapshot taken at accept: one store per handshake
    bool strict_sni = false;
    std::string sni;                    // as sent (raw, capped); empty when none
    std::string server_name;            // the SNI as a host name (lower case), empty when none
                                        // or not a host name: what routes and backends see
    const Certificate* cert = nullptr;  // what was served
    bool refused_name = false;          // strict_sni refused the name
};

class FrontContext {
public:
    // Null with `error` set when OpenSSL refuses the policy. Tickets are sealed with `keys`,
    // which every front context of the process shares (a ticket from one worker resumes on
    // another).
    [[nodiscard]] static std::unique_ptr<FrontContext> create(
        const conf::TlsSettings& settings, const std::shared_ptr<TicketKeys>& keys,
        std::string& error);

    // A new server-side SSL whose ClientHello callback consults `handshake`, which must outlive
    // the SSL's handshake.
    [[nodiscard]] SslPtr new_ssl(Handshake& handshake) const;

    explicit FrontContext(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}

private:
    SslCtxPtr ctx_;
};

}  // namespace postern::tls
