#pragma once
// What one client handshake knows beyond OpenSSL's own state: the session's CertStore snapshot,
// the listener's protocol and SNI mode as inputs, what was chosen and why a handshake was
// refused as outputs. The session owns it; OpenSSL's callbacks (the front context's ClientHello
// callback, the ALPN callback on every server context) reach it through the SSL's ex_data.

#include "protocols/protocol.hpp"
#include "tls/cert_store.hpp"

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace postern::tls {

struct Handshake {
    std::shared_ptr<const CertStore> store;  // snapshot taken at accept: one store per handshake
    bool strict_sni = false;
    // The listener's protocol, the one ALPN id accepted (tls/alpn.hpp); FrontContext::new_ssl
    // sets it.
    protocols::Protocol protocol = protocols::Protocol::Imap;
    std::string sni;                    // as sent (raw, capped); empty when none
    std::string server_name;            // the SNI as a host name (lower case), empty when none
                                        // or not a host name: what routes and backends see
    const Certificate* cert = nullptr;  // what was served
    // The client named a host no certificate holds: it got the default, or strict_sni refused.
    bool unknown_name = false;
    // Why postern refused the handshake (strict_sni, ALPN), for the session log; empty when
    // it did not. May hold client bytes (capped): the log sanitizes it.
    std::string refusal;
};

// Makes `handshake` reachable from `ssl`'s callbacks; it must outlive the SSL's handshake.
[[nodiscard]] bool attach_handshake(SSL* ssl, Handshake& handshake) noexcept;

// The handshake attached to `ssl`; null when none was.
[[nodiscard]] Handshake* handshake_of(const SSL* ssl) noexcept;

}  // namespace postern::tls
