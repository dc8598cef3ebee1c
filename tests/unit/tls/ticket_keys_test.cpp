// TicketKeys: TLS 1.3 resumption across front contexts that share keys, not across ones that
// do not, and key rotation, on real in-memory handshakes (BIO pairs). The servers are built
// the way FrontContext builds them: the SSL starts on a front context without a certificate
// and the ClientHello callback switches it to a certificate's context, as SNI selection does.
#include "tls/ticket_keys.hpp"

#include "cert_factory.hpp"
#include "tls/ossl.hpp"
#include "tls/policy.hpp"

#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>

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
