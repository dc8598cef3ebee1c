#pragma once
// Session-ticket keys shared by every front SSL_CTX of the process (all listeners, all worker
// threads), so a ticket issued by one worker resumes on any other, and rotated, so a stolen
// key opens only the sessions of a bounded window (the tickets carry the session secrets).
// Tickets are AES-256-CBC + HMAC-SHA256 (RFC 5077 layout, as OpenSSL's own), keys random at
// start: a restart invalidates every ticket, which costs one full handshake per client.

#include "tls/ossl.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace postern::tls {

// Thread-safe: worker threads call it from OpenSSL's ticket callback, under one mutex taken
// once per ticket (rotation is lazy, checked there with one clock read).
class TicketKeys {
public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;

    // A new key every `rotation`; tickets made with the previous key are still accepted for one
    // more `rotation`, so a ticket lives at most 2x. Every resumption re-issues its ticket
    // under the current key.
    // `clock` is for tests; empty means steady_clock::now. OpenSSL failures here (or a
    // rotation that is not positive) are reported by attach().
    explicit TicketKeys(std::chrono::seconds rotation = std::chrono::hours(12), Clock clock = {});
    ~TicketKeys();
    TicketKeys(const TicketKeys&) = delete;
    TicketKeys& operator=(const TicketKeys&) = delete;

    // Makes `ctx` encrypt and decrypt its tickets with these keys; the SSL_CTX keeps `keys`
    // alive (ex_data). Attach to the context SSL_new is called with (the front context): OpenSSL
    // asks that one for ticket keys even after SNI switched the SSL to a certificate's context.
    // Once per context: false with `error` on a second attach or an OpenSSL failure.
    [[nodiscard]] static bool attach(const std::shared_ptr<TicketKeys>& keys, SSL_CTX* ctx,
                                     std::string& error);

private:
    struct Key {
        std::array<unsigned char, 16> name{};  // sent in clear at the start of every ticket
        std::array<unsigned char, 32> aes{};
        std::array<unsigned char, 32> hmac{};
        std::chrono::steady_clock::time_point since;  // became the current key
        Key() = default;
        Key(const Key&) = default;
        Key& operator=(const Key&) = default;
        ~Key();
    };
    using CipherPtr = std::unique_ptr<EVP_CIPHER, CFree<&EVP_CIPHER_free>>;

    static int on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int enc) noexcept;
    int encrypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac);
    int decrypt(const unsigned char* name, const unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac);
    bool rotate(std::chrono::steady_clock::time_point now);  // mutex_ held; false: no new key

    const std::chrono::seconds rotation_;
    const Clock clock_;
    CipherPtr cipher_;   // fetched once: a fetch per ticket would search the provider store
    std::string error_;  // why construction failed; empty when usable

    std::mutex mutex_;
    std::optional<Key> current_;   // encrypts; younger than rotation_ (after rotate())
    std::optional<Key> previous_;  // still decrypts until its since + 2 * rotation_
};

}  // namespace postern::tls
