#include "tls/ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>

namespace postern::tls {
namespace {

using Holder = std::shared_ptr<TicketKeys>;

// The SSL_CTX owns a heap shared_ptr in this slot, freed with the context.
void free_holder(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                 void* /*argp*/) noexcept {
    delete static_cast<Holder*>(ptr);
}

int ctx_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_holder);
    return index;
}

// OpenSSL calls the ticket callback of the context an SSL was made from (its session_ctx), but
// once SNI switched the SSL with SSL_set_SSL_CTX, SSL_get_SSL_CTX names the certificate's
// context, and the original is not reachable. So every SSL made from an attached context notes
// the keys at SSL_new (this runs inside SSL_new, while SSL_get_SSL_CTX is still the original).
// A raw pointer suffices: the SSL holds a reference on that context, which holds the keys.
void note_keys(void* parent, void* /*ptr*/, CRYPTO_EX_DATA* ad, int idx, long /*argl*/,
               void* /*argp*/) noexcept {
    SSL_CTX* ctx = SSL_get_SSL_CTX(static_cast<SSL*>(parent));
    auto* holder =
        ctx == nullptr ? nullptr : static_cast<Holder*>(SSL_CTX_get_ex_data(ctx, ctx_index()));
    if (holder != nullptr) {
        // On allocation failure the SSL simply has no keys: no ticket, full handshakes.
        (void)CRYPTO_set_ex_data(ad, idx, holder->get());
    }
}

int ssl_index() {
    // ctx_index() first: note_keys must not be the one to allocate it, inside SSL_new.
    static const int index =
        ctx_index() < 0 ? -1 : SSL_get_ex_new_index(0, nullptr, &note_keys, nullptr, nullptr);
    return index;
}

template <std::size_t N>
bool random_bytes(std::array<unsigned char, N>& out, bool secret) {
    // The private generator for key material, so it shares no state with public nonces.
    const int n = static_cast<int>(N);
    return (secret ? RAND_priv_bytes(out.data(), n) : RAND_bytes(out.data(), n)) == 1;
}

bool set_hmac_key(EVP_MAC_CTX* mac, std::array<unsigned char, 32>& key, std::size_t size) {
    std::array<char, 7> digest{"SHA256"};  // OSSL_PARAM wants it writable
    const std::array params{
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.data(), size),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest.data(), 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(mac, params.data()) == 1;
}

}  // namespace

TicketKeys::TicketKeys(std::chrono::seconds rotation, Clock clock)
    : rotation_(rotation),
      clock_(clock ? std::move(clock) : Clock{[] { return std::chrono::steady_clock::now(); }}) {
    if (rotation_ <= std::chrono::seconds::zero()) {
        error_ = "ticket key rotation must be positive";
        return;
    }
    cipher_.reset(EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr));
    cipher128_.reset(EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr));
    const std::lock_guard lock(mutex_);
    if (!cipher_ || !cipher128_ || !rotate(clock_())) {
        error_ = ossl_errors("cannot make a session-ticket key");
    }
}

TicketKeys::~TicketKeys() = default;

bool TicketKeys::use_file_keys(const std::vector<conf::TicketKey>& keys, std::string& error) {
    if (keys.size() != conf::kTicketKeysUsed ||
        std::any_of(keys.begin(), keys.end(), [&keys](const conf::TicketKey& key) {
            return key.secret_bytes != keys.front().secret_bytes ||
                   (key.secret_bytes != 16 && key.secret_bytes != 32);
        })) {
        error = "ticket keys: need " + std::to_string(conf::kTicketKeysUsed) +
                " keys of one length (48 or 80 bytes)";
        return false;
    }
    std::vector<Key> fresh;
    fresh.reserve(keys.size());
    for (const auto& key : keys) {
        fresh.push_back(Key{key, {}});
    }
    const std::lock_guard lock(mutex_);
    file_keys_.swap(fresh);
    return true;
}

void TicketKeys::use_own_keys() {
    const std::lock_guard lock(mutex_);
    if (file_keys_.empty()) {
        return;
    }
    file_keys_.clear();
    file_.clear();
    // Never go back to own keys made before the file was used: start afresh.
    current_.reset();
    previous_.reset();
    (void)rotate(clock_());  // on failure encrypt() retries, and sends no ticket meanwhile
}

bool TicketKeys::load(const conf::TlsSettings& tls, const conf::FileSnapshot& files,
                      std::string& error) {
    if (tls.ticket_keys_file.empty()) {
        use_own_keys();
        return true;
    }
    const std::string name = tls.ticket_keys_file.string();
    const conf::FileRead& read = files.file(tls.ticket_keys_file);
    if (!read.bytes) {
        error = "cannot read \"" + name + "\": " + read.error;
        return false;
    }
    const conf::TicketKeyFile parsed = conf::parse_ticket_keys(*read.bytes);
    if (!parsed.error.empty()) {
        error = name + (parsed.line != 0 ? ":" + std::to_string(parsed.line) : "") + ": " +
                parsed.error;
        return false;
    }
    if (!use_file_keys(parsed.keys, error)) {
        error = name + ": " + error;
        return false;
    }
    const std::lock_guard lock(mutex_);
    file_ = name;
    return true;
}

std::string TicketKeys::describe() const {
    const std::lock_guard lock(mutex_);
    if (file_keys_.empty()) {
        return "keys of its own, rotated every " + std::to_string(rotation_.count()) + " s";
    }
    return std::to_string(file_keys_.size()) + " keys (AES-" +
           std::to_string(file_keys_.front().secret_bytes * 8) + ") from " +
           (file_.empty() ? std::string{"a file"} : file_);
}

const EVP_CIPHER* TicketKeys::cipher_for(const Key& key) const noexcept {
    return key.secret_bytes == 16 ? cipher128_.get() : cipher_.get();
}

bool TicketKeys::attach(const std::shared_ptr<TicketKeys>& keys, SSL_CTX* ctx, std::string& error) {
    if (!keys || ctx == nullptr) {
        error = "no ticket keys or no SSL_CTX";
        return false;
    }
    if (!keys->error_.empty()) {
        error = keys->error_;
        return false;
    }
    const int ctx_idx = ctx_index();
    if (ctx_idx < 0 || ssl_index() < 0) {
        error = ossl_errors("no ex_data index for session-ticket keys");
        return false;
    }
    // SSLs already made from `ctx` point at the keys it holds: replacing them could free keys
    // still in use, so a context takes its keys once.
    if (SSL_CTX_get_ex_data(ctx, ctx_idx) != nullptr) {
        error = "this SSL_CTX already has session-ticket keys";
        return false;
    }
    auto holder = std::make_unique<Holder>(keys);
    if (SSL_CTX_set_ex_data(ctx, ctx_idx, holder.get()) != 1) {
        error = ossl_errors();
        return false;
    }
    (void)holder.release();  // the SSL_CTX owns it now; free_holder deletes it with the context
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::on_ticket) != 1) {
        error = ossl_errors();
        return false;
    }
    return true;
}

int TicketKeys::on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                          EVP_MAC_CTX* mac, int enc) noexcept {
    auto* keys = static_cast<TicketKeys*>(SSL_get_ex_data(ssl, ssl_index()));
    if (keys == nullptr) {
        return 0;  // an SSL made before attach(): no ticket, full handshakes
    }
    try {  // no exception may cross OpenSSL's frames (the mutex, a test clock)
        return enc == 1 ? keys->encrypt(name, iv, cipher, mac)
                        : keys->decrypt(name, iv, cipher, mac);
    } catch (...) {
        return -1;
    }
}

int TicketKeys::encrypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                        EVP_MAC_CTX* mac) {
    const std::lock_guard lock(mutex_);
    if (file_keys_.empty() && !rotate(clock_())) {
        return 0;  // never encrypt under an expired key; TLS 1.3 then just sends no ticket
    }
    // The file's penultimate key, as HAProxy: the newest is then already known to every
    // instance that has read the file before any of them encrypts with it.
    Key& key = file_keys_.empty() ? *current_ : file_keys_[1];
    const EVP_CIPHER* algorithm = cipher_for(key);
    const int iv_len = EVP_CIPHER_get_iv_length(algorithm);  // 16, <= EVP_MAX_IV_LENGTH
    if (RAND_bytes(iv, iv_len) != 1) {
        return -1;
    }
    std::copy(key.name.begin(), key.name.end(), name);
    if (EVP_EncryptInit_ex(cipher, algorithm, nullptr, key.aes.data(), iv) != 1 ||
        !set_hmac_key(mac, key.hmac, key.secret_bytes)) {
        return -1;
    }
    return 1;
}

int TicketKeys::decrypt(const unsigned char* name, const unsigned char* iv, EVP_CIPHER_CTX* cipher,
                        EVP_MAC_CTX* mac) {
    const std::lock_guard lock(mutex_);
    Key* key = nullptr;
    const auto named = [name](const Key& k) {
        return std::equal(k.name.begin(), k.name.end(), name);
    };
    if (!file_keys_.empty()) {
        const auto found = std::find_if(file_keys_.begin(), file_keys_.end(), named);
        key = found == file_keys_.end() ? nullptr : &*found;
    } else {
        const auto now = clock_();
        (void)rotate(now);  // if that failed, what is still valid below still decrypts
        for (auto* candidate : {&current_, &previous_}) {
            if (*candidate && named(**candidate) && now - (*candidate)->since < 2 * rotation_) {
                key = &**candidate;
                break;
            }
        }
    }
    if (key == nullptr) {
        return 0;  // unknown or expired key: full handshake
    }
    if (!set_hmac_key(mac, key->hmac, key->secret_bytes) ||
        EVP_DecryptInit_ex(cipher, cipher_for(*key), nullptr, key->aes.data(), iv) != 1) {
        return -1;
    }
    // 2: every resumption ends with a fresh ticket (under the current key), as OpenSSL's own
    // keys do. On 1 a resumed TLS 1.3 handshake sends none, and clients that use a ticket once
    // (RFC 8446 C.4; NSS, Apple) would make every other connection a full handshake, while the
    // rest would show the same ticket, linkable, until its key expires.
    return 2;
}

bool TicketKeys::rotate(std::chrono::steady_clock::time_point now) {
    if (current_ && now - current_->since < rotation_) {
        return true;
    }
    // Lazy: the current key only ever encrypted before its since + rotation_ (any later
    // callback lands here first), so its tickets stay valid until since + 2 * rotation_.
    Key fresh;
    fresh.since = now;
    fresh.secret_bytes = fresh.aes.size();
    if (!random_bytes(fresh.name, false) || !random_bytes(fresh.aes, true) ||
        !random_bytes(fresh.hmac, true)) {
        return false;
    }
    if (current_ && now - current_->since < 2 * rotation_) {
        previous_ = *current_;
    } else {
        previous_.reset();
    }
    current_ = fresh;
    return true;
}

}  // namespace postern::tls
