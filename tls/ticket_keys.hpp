#pragma once
// Session-ticket keys shared by every front SSL_CTX of the process (all listeners, all worker
// threads), so a ticket issued by one worker resumes on any other. Two sources:
// - its own: random at start and rotated, so a stolen key opens only the sessions of a bounded
//   window (the tickets carry the session secrets); a restart invalidates every ticket, which
//   costs one full handshake per client. AES-256-CBC + HMAC-SHA256.
// - tls.ticket_keys_file (conf/ticket_key_file.hpp, HAProxy's format and rotation rule): the
//   same keys in every instance that reads the file, so a ticket from one resumes on another;
//   the penultimate key encrypts, the last three decrypt; AES-128 or AES-256 by the key length,
//   HMAC-SHA256, as HAProxy's ssl_tlsext_ticket_key_cb, so tickets pass between the two as well.
// Tickets use OpenSSL's own layout (RFC 5077 §4): key name, IV, encrypted state, HMAC.

#include "conf/config.hpp"
#include "conf/file_snapshot.hpp"
#include "conf/ticket_key_file.hpp"
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
#include <vector>

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

    // From now on tickets are made with keys[1] and any of `keys` opens one (the last three
    // of a ticket key file, in file order), with no rotation of our own: the file's owner
    // rotates. Tickets made with keys no longer listed get a full handshake. False (with why,
    // and the keys in use unchanged) unless there are kTicketKeysUsed keys of one length.
    [[nodiscard]] bool use_file_keys(const std::vector<conf::TicketKey>& keys, std::string& error);
    // Back to keys of our own (a fresh random one), as when no file is configured.
    void use_own_keys();
    // tls.ticket_keys_file read from `files` into use_file_keys, or use_own_keys when it is not
    // set. False (with why, naming the file and line; keys unchanged) when it does not load.
    [[nodiscard]] bool load(const conf::TlsSettings& tls, const conf::FileSnapshot& files,
                            std::string& error);
    // "own keys" or "3 keys (AES-256) from /etc/...": for the log; never key bytes.
    [[nodiscard]] std::string describe() const;

    // Makes `ctx` encrypt and decrypt its tickets with these keys; the SSL_CTX keeps `keys`
    // alive (ex_data). Attach to the context SSL_new is called with (the front context): OpenSSL
    // asks that one for ticket keys even after SNI switched the SSL to a certificate's context.
    // Once per context: false with `error` on a second attach or an OpenSSL failure.
    [[nodiscard]] static bool attach(const std::shared_ptr<TicketKeys>& keys, SSL_CTX* ctx,
                                     std::string& error);

private:
    struct Key : conf::TicketKey {
        std::chrono::steady_clock::time_point since;  // became the current key (own keys)
    };
    using CipherPtr = std::unique_ptr<EVP_CIPHER, CFree<&EVP_CIPHER_free>>;

    static int on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int enc) noexcept;
    int encrypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac);
    int decrypt(const unsigned char* name, const unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac);
    bool rotate(std::chrono::steady_clock::time_point now);  // mutex_ held; false: no new key
    [[nodiscard]] const EVP_CIPHER* cipher_for(const Key& key) const noexcept;

    const std::chrono::seconds rotation_;
    const Clock clock_;
    // Fetched once: a fetch per ticket would search the provider store.
    CipherPtr cipher_;     // AES-256-CBC: own keys, 80-byte file keys
    CipherPtr cipher128_;  // AES-128-CBC: 48-byte file keys
    std::string error_;    // why construction failed; empty when usable

    mutable std::mutex mutex_;
    std::optional<Key> current_;   // encrypts; younger than rotation_ (after rotate())
    std::optional<Key> previous_;  // still decrypts until its since + 2 * rotation_
    std::vector<Key> file_keys_;   // when not empty, used instead: [1] encrypts, all decrypt
    std::string file_;             // where file_keys_ came from, for describe()
};

}  // namespace postern::tls
