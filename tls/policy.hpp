#pragma once
// The one TLS policy postern applies to every SSL_CTX it creates (the per-listener front
// context and each certificate's context), so a context switch by SNI never changes policy.
// TLS 1.2+ only (RFC 8996), AEAD suites with forward secrecy only, no renegotiation, no
// compression, ALPN checked against the listener's protocol (tls/alpn.hpp). Buffers are
// released when idle (most mail sessions are idle IMAP connections).
// The session-id context is not policy: each certificate has its own (tls/certificate.cpp).

#include "conf/config.hpp"

#include <openssl/ssl.h>

#include <string>

namespace postern::tls {

// Returns false (with the OpenSSL reason in `error`) if OpenSSL refused a setting.
[[nodiscard]] bool apply_policy(SSL_CTX* ctx, const conf::TlsSettings& settings,
                                std::string& error);

}  // namespace postern::tls
