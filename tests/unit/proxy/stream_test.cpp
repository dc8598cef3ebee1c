// Stream's "worth reading" flag over TLS with read-ahead, on a real socket pair and a real
// epoll loop (never run: the test stands in for the loop and calls the stream directly).
// The flag may say "no" only when a new byte is sure to raise a new edge: OpenSSL holds no
// record and its last recv emptied the socket.
#include "proxy/stream.hpp"

#include "../tls/cert_factory.hpp"
#include "tls/ossl.hpp"
#include "tls/policy.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <array>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

using postern::proxy::BufferPool;
using postern::proxy::EventBasePtr;
using postern::proxy::Io;
using postern::proxy::Stream;
using postern::tls::PkeyPtr;
using postern::tls::SslCtxPtr;
using postern::tls::SslPtr;
using postern::tls::X509Ptr;
using postern::tls::testing::make_cert;
using postern::tls::testing::make_key;

namespace {

void ignore_event(evutil_socket_t /*fd*/, short /*what*/, void* /*arg*/) {}

// A server Stream on one end of a socket pair, an OpenSSL client on the other, and the
// handshake driven by hand up to the client's Finished.
struct Pair {
    PkeyPtr key = make_key(false);
    X509Ptr cert = make_cert(key.get(), {"mail.example.test"}, 30);
    SslCtxPtr server_ctx{SSL_CTX_new(TLS_server_method())};
    SslCtxPtr client_ctx{SSL_CTX_new(TLS_client_method())};
    EventBasePtr base{event_base_new()};
    BufferPool pool;
    Stream server{pool};
    SslPtr client;
    int client_fd = -1;

    Pair() {
        REQUIRE(base);
        std::string error;
        REQUIRE_MESSAGE(postern::tls::apply_policy(server_ctx.get(), {}, error), error);
        REQUIRE(SSL_CTX_use_certificate(server_ctx.get(), cert.get()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey(server_ctx.get(), key.get()) == 1);
        REQUIRE(SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_3_VERSION) == 1);
        std::array<int, 2> fds{-1, -1};
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) ==
                0);
        REQUIRE(server.open(base.get(), postern::proxy::UniqueFd{fds[0]}, &ignore_event, nullptr));
        client_fd = fds[1];
        client.reset(SSL_new(client_ctx.get()));
        REQUIRE(client);
        REQUIRE(SSL_set_fd(client.get(), client_fd) == 1);
        SSL_set_connect_state(client.get());
        server.start_tls(SslPtr{SSL_new(server_ctx.get())});
        REQUIRE(server.ssl() != nullptr);

        REQUIRE(SSL_do_handshake(client.get()) == -1);  // ClientHello out
        CHECK(server.handshake() == Io::Again);         // its flight out, then waits
        CHECK_FALSE(server.can_read());                 // the socket said "would block"
        REQUIRE(SSL_do_handshake(client.get()) == 1);   // Finished out
    }
    ~Pair() {
        client.reset();
        if (client_fd >= 0) {
            ::close(client_fd);
        }
    }
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;

    void send(std::string_view text) const {
        REQUIRE(SSL_write(client.get(), text.data(), static_cast<int>(text.size())) ==
                static_cast<int>(text.size()));
    }
};

}  // namespace

TEST_CASE("a handshake that read the client's first command leaves the stream readable") {
    // The Finished and a command arrive together, and the handshake runs on a write edge (as
    // an epoll loop reports it when the bytes land between its wait and the handshake). With
    // read-ahead the handshake takes both; the read edge, reported later, no longer says
    // "readable". The stream must not wait for it, or the command sits unanswered.
    Pair pair;
    pair.send("a NOOP\r\n");
    REQUIRE(pair.server.handshake() == Io::Ok);
    CHECK(pair.server.can_read());
    REQUIRE(pair.server.read_into(pair.server.in, 1024) == Io::Ok);
    CHECK(pair.server.in.view() == "a NOOP\r\n");
    CHECK_FALSE(pair.server.can_read());  // drained, and known to be without one more recv
}

TEST_CASE("a handshake that read only the Finished needs no further recv") {
    Pair pair;
    REQUIRE(pair.server.handshake() == Io::Ok);
    CHECK_FALSE(pair.server.can_read());
    pair.send("b NOOP\r\n");
    pair.server.on_ready(EV_READ);  // the edge the loop reports for the new record
    CHECK(pair.server.can_read());
    REQUIRE(pair.server.read_into(pair.server.in, 1024) == Io::Ok);
    CHECK(pair.server.in.view() == "b NOOP\r\n");
    CHECK_FALSE(pair.server.can_read());
}

TEST_CASE("records held by OpenSSL keep the stream readable until the last is read") {
    Pair pair;
    REQUIRE(pair.server.handshake() == Io::Ok);
    pair.server.on_ready(EV_READ);
    pair.send("c1 NOOP\r\n");  // two records, one recv with read-ahead
    pair.send("c2 NOOP\r\n");
    REQUIRE(pair.server.read_into(pair.server.in, 1024) == Io::Ok);
    CHECK(pair.server.in.view() == "c1 NOOP\r\n");  // SSL_read hands out one record
    CHECK(pair.server.can_read());
    REQUIRE(pair.server.read_into(pair.server.in, 4) == Io::Ok);  // part of the second
    CHECK(pair.server.can_read());
    REQUIRE(pair.server.read_into(pair.server.in, 1024) == Io::Ok);
    CHECK(pair.server.in.view() == "c1 NOOP\r\nc2 NOOP\r\n");
    CHECK_FALSE(pair.server.can_read());
}
