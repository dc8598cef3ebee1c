// TicketKeys: TLS 1.3 resumption across front contexts that share keys, not across ones that
// do not, and key rotation, on real in-memory handshakes (BIO pairs). The servers are built
// the way FrontContext builds them: the SSL starts on a front context without a certificate
// and the ClientHello callback switches it to a certificate's context, as SNI selection does.
// Then keys from tls.ticket_keys_file: which key encrypts, which decrypt, rotation by
// appending, and a file that does not load leaving the keys in use.
#include "tls/ticket_keys.hpp"

#include "cert_factory.hpp"
#include "conf/file_snapshot.hpp"
#include "tests/unit/conf/conf_test_support.hpp"
#include "tls/ossl.hpp"
#include "tls/policy.hpp"

#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using postern::tls::apply_policy;
using postern::tls::CFree;
using postern::tls::ossl_errors;
using postern::tls::PkeyPtr;
using postern::tls::SslCtxPtr;
using postern::tls::SslPtr;
using postern::tls::TicketKeys;
using postern::tls::X509Ptr;
using postern::tls::testing::make_cert;
using postern::tls::testing::make_key;

namespace {

using SessionPtr = std::unique_ptr<SSL_SESSION, CFree<&SSL_SESSION_free>>;
using KeyName = std::array<unsigned char, 16>;
using std::chrono::hours;
using std::chrono::seconds;
using std::chrono::steady_clock;

SslCtxPtr policy_ctx() {
    SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
    REQUIRE(ctx);
    std::string error;
    REQUIRE_MESSAGE(apply_policy(ctx.get(), postern::conf::TlsSettings{}, error), error);
    return ctx;
}

int switch_to_cert(SSL* ssl, int* alert, void* cert_ctx) noexcept {
    if (SSL_set_SSL_CTX(ssl, static_cast<SSL_CTX*>(cert_ctx)) == nullptr) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

// One listener (or one worker's copy of it): a front context and the certificate's context.
struct Server {
    SslCtxPtr front;
    SslCtxPtr cert;
};

// Every server serves the same self-signed certificate; the client does not verify it.
struct Identity {
    PkeyPtr key = make_key(false);
    X509Ptr cert = make_cert(key.get(), {"mail.example.test"}, 30);
};

Server make_server(const Identity& id, const std::shared_ptr<TicketKeys>& keys) {
    Server server{policy_ctx(), policy_ctx()};
    REQUIRE(SSL_CTX_use_certificate(server.cert.get(), id.cert.get()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server.cert.get(), id.key.get()) == 1);
    SSL_CTX_set_client_hello_cb(server.front.get(), &switch_to_cert, server.cert.get());
    std::string error;
    REQUIRE_MESSAGE(TicketKeys::attach(keys, server.front.get(), error), error);
    return server;
}

SslCtxPtr client_ctx() {
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    REQUIRE(ctx);
    REQUIRE(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) == 1);
    return ctx;
}

// True once the handshake is done; fails the test on anything but "needs I/O".
bool step(SSL* ssl) {
    const int ret = SSL_do_handshake(ssl);
    if (ret == 1) {
        return true;
    }
    const int err = SSL_get_error(ssl, ret);
    REQUIRE_MESSAGE((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE), ossl_errors());
    return false;
}

struct Outcome {
    bool reused = false;
    SessionPtr session;  // the newest session the client holds (its last ticket)
};

// One TLS 1.3 connection over a BIO pair, offering `resume` when given.
Outcome dial(SSL_CTX* client_ctx, const Server& server, SSL_SESSION* resume = nullptr) {
    SslPtr client{SSL_new(client_ctx)};
    SslPtr srv{SSL_new(server.front.get())};
    REQUIRE(client);
    REQUIRE(srv);
    BIO* client_end = nullptr;
    BIO* server_end = nullptr;
    REQUIRE(BIO_new_bio_pair(&client_end, 0, &server_end, 0) == 1);
    SSL_set_bio(client.get(), client_end, client_end);  // each SSL owns its end
    SSL_set_bio(srv.get(), server_end, server_end);
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(srv.get());
    if (resume != nullptr) {
        REQUIRE(SSL_set_session(client.get(), resume) == 1);
    }
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 10 && !(client_done && server_done); ++round) {
        client_done = client_done || step(client.get());
        server_done = server_done || step(srv.get());
    }
    REQUIRE(client_done);
    REQUIRE(server_done);
    CHECK(SSL_get_SSL_CTX(srv.get()) == server.cert.get());  // the SNI-like switch happened
    CHECK(SSL_version(client.get()) == TLS1_3_VERSION);
    // TLS 1.3 tickets follow the handshake; a read that finds no data processes them.
    unsigned char byte = 0;
    CHECK(SSL_read(client.get(), &byte, 1) <= 0);
    Outcome out;
    out.reused = SSL_session_reused(srv.get()) == 1;
    CHECK((SSL_session_reused(client.get()) == 1) == out.reused);
    out.session.reset(SSL_get1_session(client.get()));
    REQUIRE(out.session);
    // Close cleanly: SSL_free without a sent close_notify marks the session not resumable.
    SSL_shutdown(client.get());
    SSL_shutdown(srv.get());
    REQUIRE(SSL_SESSION_is_resumable(out.session.get()) == 1);
    return out;
}

// Tickets start with the name of the key that encrypted them.
KeyName key_name(const SSL_SESSION* session) {
    const unsigned char* ticket = nullptr;
    std::size_t len = 0;
    SSL_SESSION_get0_ticket(session, &ticket, &len);
    KeyName name{};
    REQUIRE(len > name.size());
    std::copy(ticket, ticket + name.size(), name.begin());
    return name;
}

// A ticket's bytes, to tell a fresh ticket from the one offered.
std::string ticket_bytes(const SSL_SESSION* session) {
    const unsigned char* ticket = nullptr;
    std::size_t len = 0;
    SSL_SESSION_get0_ticket(session, &ticket, &len);
    return {reinterpret_cast<const char*>(ticket), len};
}

// Keys as conf::parse_ticket_keys gives them, in file order; key n is named n,n,...
std::vector<postern::conf::TicketKey> keys_named(std::initializer_list<unsigned char> names,
                                                 std::size_t secret_bytes = 32) {
    std::vector<postern::conf::TicketKey> out;
    for (const unsigned char n : names) {
        postern::conf::TicketKey key;
        key.name.fill(n);
        key.aes.fill(static_cast<unsigned char>(n + 100));
        key.hmac.fill(static_cast<unsigned char>(n + 200));
        key.secret_bytes = secret_bytes;
        out.push_back(key);
    }
    return out;
}

std::shared_ptr<TicketKeys> file_keys(std::initializer_list<unsigned char> names,
                                      std::size_t secret_bytes = 32) {
    auto keys = std::make_shared<TicketKeys>();
    std::string error;
    REQUIRE_MESSAGE(keys->use_file_keys(keys_named(names, secret_bytes), error), error);
    return keys;
}

KeyName name_of(unsigned char n) {
    KeyName name{};
    name.fill(n);
    return name;
}

}  // namespace

TEST_CASE("ticket_keys: a ticket resumes on the context that issued it") {
    const Identity id;
    const Server server = make_server(id, std::make_shared<TicketKeys>());
    const SslCtxPtr client = client_ctx();

    const Outcome first = dial(client.get(), server);
    CHECK_FALSE(first.reused);
    CHECK(dial(client.get(), server, first.session.get()).reused);
}

TEST_CASE("ticket_keys: a ticket from one context resumes on another sharing the keys") {
    const Identity id;
    const auto keys = std::make_shared<TicketKeys>();
    const Server worker1 = make_server(id, keys);
    const Server worker2 = make_server(id, keys);
    const SslCtxPtr client = client_ctx();

    const Outcome first = dial(client.get(), worker1);
    CHECK_FALSE(first.reused);
    const Outcome second = dial(client.get(), worker2, first.session.get());
    CHECK(second.reused);
    // And the ticket worker 2 issued resumes on worker 1.
    CHECK(dial(client.get(), worker1, second.session.get()).reused);
}

TEST_CASE("ticket_keys: every resumption ends with a fresh ticket, itself good for the next") {
    // Clients that use a ticket once (RFC 8446 C.4) resume every time only if each resumption
    // hands them a new one; the others stop showing one linkable ticket.
    const Identity id;
    const auto keys = std::make_shared<TicketKeys>();
    const Server server = make_server(id, keys);
    const SslCtxPtr client = client_ctx();

    const Outcome first = dial(client.get(), server);
    const Outcome second = dial(client.get(), server, first.session.get());
    REQUIRE(second.reused);
    CHECK(ticket_bytes(second.session.get()) != ticket_bytes(first.session.get()));
    const Outcome third = dial(client.get(), server, second.session.get());
    CHECK(third.reused);
    CHECK(ticket_bytes(third.session.get()) != ticket_bytes(second.session.get()));
}

TEST_CASE("ticket_keys: contexts with separate keys do not resume each other's tickets") {
    const Identity id;
    const Server server1 = make_server(id, std::make_shared<TicketKeys>());
    const Server server2 = make_server(id, std::make_shared<TicketKeys>());
    const SslCtxPtr client = client_ctx();

    const Outcome first = dial(client.get(), server1);
    CHECK_FALSE(dial(client.get(), server2, first.session.get()).reused);
    CHECK(dial(client.get(), server1, first.session.get()).reused);  // the ticket was good
}

TEST_CASE("ticket_keys: a ticket outlives one rotation, re-issued under the new key, not two") {
    const auto start = steady_clock::now();
    auto now = start;
    const auto rotation = hours(1);
    const auto keys = std::make_shared<TicketKeys>(rotation, [&now] { return now; });
    const Identity id;
    const Server worker1 = make_server(id, keys);
    const Server worker2 = make_server(id, keys);
    const SslCtxPtr client = client_ctx();

    const Outcome gen0 = dial(client.get(), worker1);
    CHECK_FALSE(gen0.reused);
    now = start + rotation - seconds(1);
    const Outcome still = dial(client.get(), worker2, gen0.session.get());
    CHECK(still.reused);
    CHECK(key_name(still.session.get()) == key_name(gen0.session.get()));  // no rotation yet

    now = start + rotation + seconds(1);  // key 1 takes over; key 0 only decrypts
    const Outcome renewed = dial(client.get(), worker2, gen0.session.get());
    CHECK(renewed.reused);
    const KeyName gen1_name = key_name(dial(client.get(), worker1).session.get());
    CHECK(gen1_name != key_name(gen0.session.get()));
    CHECK(key_name(renewed.session.get()) == gen1_name);  // the server sent a fresh ticket

    now = start + 2 * rotation;  // key 0 expires now, though key 1 is not due to rotate yet
    CHECK_FALSE(dial(client.get(), worker1, gen0.session.get()).reused);
    CHECK(dial(client.get(), worker1, renewed.session.get()).reused);

    now = start + 2 * rotation + seconds(1);  // key 2 takes over; key 1 only decrypts
    CHECK(dial(client.get(), worker1, renewed.session.get()).reused);

    now = start + 3 * rotation + seconds(2);  // key 1 (from start + 1h + 1s) expired
    CHECK_FALSE(dial(client.get(), worker2, renewed.session.get()).reused);
}

TEST_CASE("ticket_keys: attach refuses a second set of keys and a rotation that is not positive") {
    const SslCtxPtr ctx = policy_ctx();
    std::string error;
    CHECK(TicketKeys::attach(std::make_shared<TicketKeys>(), ctx.get(), error));
    CHECK_FALSE(TicketKeys::attach(std::make_shared<TicketKeys>(), ctx.get(), error));
    CHECK(error.find("already") != std::string::npos);

    error.clear();
    const SslCtxPtr other = policy_ctx();
    CHECK_FALSE(TicketKeys::attach(std::make_shared<TicketKeys>(seconds(0)), other.get(), error));
    CHECK(error.find("positive") != std::string::npos);
}

TEST_CASE("ticket_keys: file keys: the penultimate encrypts, the last three decrypt") {
    // Both of HAProxy's key sizes: 80-byte lines (AES-256) and 48-byte lines (AES-128).
    for (const std::size_t secret : {std::size_t{32}, std::size_t{16}}) {
        CAPTURE(secret);
        const Identity id;
        const SslCtxPtr client = client_ctx();
        const Server before = make_server(id, file_keys({1, 2, 3}, secret));
        const Outcome first = dial(client.get(), before);
        CHECK_FALSE(first.reused);
        CHECK(key_name(first.session.get()) == name_of(2));

        // Another instance that read the file after one rotation (a key appended): the
        // ticket's key is now the oldest of the three, still decrypts; the fresh ticket is
        // under the new penultimate.
        const Server rotated = make_server(id, file_keys({2, 3, 4}, secret));
        const Outcome renewed = dial(client.get(), rotated, first.session.get());
        CHECK(renewed.reused);
        CHECK(key_name(renewed.session.get()) == name_of(3));

        // Two rotations later the first ticket's key is gone; the renewed ticket still works.
        const Server twice = make_server(id, file_keys({3, 4, 5}, secret));
        CHECK_FALSE(dial(client.get(), twice, first.session.get()).reused);
        CHECK(dial(client.get(), twice, renewed.session.get()).reused);

        // The newest key decrypts before anything encrypts with it: a ticket made where the
        // file is one rotation ahead resumes where it is not.
        CHECK(dial(client.get(), before, renewed.session.get()).reused);
    }
}

TEST_CASE("ticket_keys: file keys and own keys do not open each other's tickets") {
    const Identity id;
    const SslCtxPtr client = client_ctx();
    const Server from_file = make_server(id, file_keys({1, 2, 3}));
    const Server own = make_server(id, std::make_shared<TicketKeys>());
    const Server other_length = make_server(id, file_keys({1, 2, 3}, 16));
    const Outcome file_ticket = dial(client.get(), from_file);
    // Another instance reading the same file opens it (a TicketKeys of its own, same keys).
    const Server same_file = make_server(id, file_keys({1, 2, 3}));
    CHECK(dial(client.get(), same_file, file_ticket.session.get()).reused);
    CHECK_FALSE(dial(client.get(), own, file_ticket.session.get()).reused);
    // Same names, other keys: the HMAC check fails, a full handshake follows.
    CHECK_FALSE(dial(client.get(), other_length, file_ticket.session.get()).reused);
    const Outcome own_ticket = dial(client.get(), own);
    CHECK_FALSE(dial(client.get(), from_file, own_ticket.session.get()).reused);
}

TEST_CASE("ticket_keys: use_file_keys refuses anything but three keys of one length") {
    const Identity id;
    const SslCtxPtr client = client_ctx();
    const auto keys = file_keys({1, 2, 3});
    const Server server = make_server(id, keys);
    const Outcome first = dial(client.get(), server);
    std::string error;
    CHECK_FALSE(keys->use_file_keys(keys_named({7, 8}), error));
    auto mixed = keys_named({7, 8, 9});
    mixed[2].secret_bytes = 16;
    CHECK_FALSE(keys->use_file_keys(mixed, error));
    CHECK(dial(client.get(), server, first.session.get()).reused);  // the keys in use stay
}

TEST_CASE("ticket_keys: load reads the file from a snapshot; a bad file keeps the keys in use") {
    using postern::conf::FileSnapshot;
    const postern::conf::test::TempDir dir;
    const auto line = [](unsigned char n) {
        // 80 bytes of n, base64: 108 characters, one '=' of padding.
        static constexpr std::string_view kAlphabet =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        std::string out;
        const unsigned v = n;
        const unsigned group = (v << 16) | (v << 8) | v;
        for (int i = 0; i < 26; ++i) {
            for (int j = 0; j < 4; ++j) {
                out += kAlphabet[(group >> (18 - 6 * j)) & 0x3fU];
            }
        }
        const unsigned tail = (v << 16) | (v << 8);  // the last two bytes
        for (int j = 0; j < 3; ++j) {
            out += kAlphabet[(tail >> (18 - 6 * j)) & 0x3fU];
        }
        return out + "=\n";
    };
    postern::conf::TlsSettings tls;
    tls.ticket_keys_file = dir.write("tickets.key", line(1) + line(2) + line(3));
    const auto keys = std::make_shared<TicketKeys>();
    std::string error;
    REQUIRE_MESSAGE(keys->load(tls, *FileSnapshot::reading(dir.path() / "x.toml"), error), error);
    CHECK(keys->describe() == "3 keys (AES-256) from " + tls.ticket_keys_file.string());

    const Identity id;
    const SslCtxPtr client = client_ctx();
    const Server server = make_server(id, keys);
    const Outcome first = dial(client.get(), server);
    CHECK(key_name(first.session.get()) == name_of(2));

    (void)dir.write("tickets.key", line(1) + "garbage\n" + line(3));
    CHECK_FALSE(keys->load(tls, *FileSnapshot::reading(dir.path() / "x.toml"), error));
    CHECK_MESSAGE(error.find(tls.ticket_keys_file.string() + ":2: ") == 0, error);
    CHECK(dial(client.get(), server, first.session.get()).reused);

    // Unset again: keys of its own, which do not know the file's tickets.
    REQUIRE(keys->load(postern::conf::TlsSettings{}, *FileSnapshot::reading(dir.path()), error));
    CHECK(keys->describe().find("of its own") != std::string::npos);
    CHECK_FALSE(dial(client.get(), server, first.session.get()).reused);
}
