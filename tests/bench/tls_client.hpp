#pragma once
// The generator's TLS client context: TLS 1.3 only, one key exchange group and one cipher
// suite (the same for every proxy, so that their figures compare), signature algorithms that
// make a dual-certificate server pick ECDSA or RSA, no certificate verification (the
// benchmark measures the server, and verifying would only add client CPU), and, when asked,
// capture of the session tickets the server sends, for resumed handshakes.

#include "tests/bench/handles.hpp"

#include <cstdint>
#include <string>

namespace postern::bench {

enum class KeyPreference : std::uint8_t { Any, Ecdsa, Rsa };

struct ClientTlsOptions {
    KeyPreference key = KeyPreference::Any;
    std::string ciphersuites = "TLS_AES_128_GCM_SHA256";
    std::string groups = "X25519";
    bool release_buffers = false;  // SSL_MODE_RELEASE_BUFFERS: for many idle connections
};

// Keeps the newest session ticket any connection received.
class SessionStore {
public:
    [[nodiscard]] SSL_SESSION* latest() const noexcept { return latest_.get(); }
    [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
    void put(SSL_SESSION* session) noexcept {  // takes ownership
        latest_.reset(session);
        ++received_;
    }

private:
    SslSessionPtr latest_;
    std::uint64_t received_ = 0;
};

// Null on failure, with OpenSSL's reasons in `error`. `store` (may be null) must outlive the
// context and every SSL made from it.
[[nodiscard]] SslCtxPtr make_client_context(const ClientTlsOptions& options, SessionStore* store,
                                            std::string& error);

}  // namespace postern::bench
