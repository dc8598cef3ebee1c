#pragma once
// What both of postern-bench-floor's measurements share (tls_floor.cpp: heap per idle
// connection; tls_floor_cpu.cpp: CPU per server handshake): a server context set up as
// postern's, a client context offering what the load generator offers, and one connection over
// a non-blocking socketpair in this one process.

#include "tests/bench/handles.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace postern::bench::tls_floor {

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, CFree<&EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, CFree<&X509_free>>;

inline constexpr std::string_view kGreeting = "* OK ready\r\n";
inline constexpr int kMaxRounds = 100;  // steps a handshake or read may take over a socketpair

// An error with OpenSSL's error queue appended (and emptied).
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what);
};

enum class KeyType : std::uint8_t { Ecdsa, Rsa };

[[nodiscard]] EvpPkeyPtr make_key(KeyType type);
[[nodiscard]] X509Ptr make_certificate(EVP_PKEY* key);
// The settings postern's apply_policy() makes (tls/policy.cpp), with TLS 1.3 as the minimum.
[[nodiscard]] SslCtxPtr make_server_context(EVP_PKEY* key, X509* cert);
// What the load generator offers (tests/bench/tls_client.cpp): TLS 1.3, X25519,
// TLS_AES_128_GCM_SHA256. `keep_sessions` lets the client resume with SSL_get1_session.
[[nodiscard]] SslCtxPtr make_client_context(bool keep_sessions = false);

// Both ends of one socketpair. Each SSL is declared after its descriptor, so it is freed first.
struct Pair {
    UniqueFd client_fd;
    SslPtr client;
    UniqueFd server_fd;
    SslPtr server;
};

[[nodiscard]] Pair open_pair(SSL_CTX* client_ctx, SSL_CTX* server_ctx);
// True once an SSL call succeeded, false if it would block; throws on anything else.
[[nodiscard]] bool finished(SSL* ssl, int rc, const char* what);
// Checks that the server negotiated TLS 1.3, X25519 and TLS_AES_128_GCM_SHA256.
void check_negotiated(SSL* server);

}  // namespace postern::bench::tls_floor
