// proxy::Relay on plaintext socket pairs: where a read goes (the machine's input, or straight
// to the other side), back-pressure, byte counts, the client's goodbye tail, and the traffic
// timestamps it hands to Deadlines.
#include "proxy/relay.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>

#include <array>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

using protocols::Peer;
using namespace std::chrono_literals;

void ignore_event(evutil_socket_t /*fd*/, short /*what*/, void* /*arg*/) {}

// A session's two streams, each on one end of a socket pair; the test holds the other ends.
struct Sides {
    EventBasePtr base{event_base_new()};
    BufferPool pool;
    Stream client{pool};
    Stream backend{pool};
    UniqueFd client_peer;
    UniqueFd backend_peer;
    Deadlines deadlines{{.handshake = 10s, .idle = 100s, .plaintext = 10s},
                        Deadlines::Clock::now()};
    Relay relay{client, backend, deadlines, 65536};

    Sides() {
        REQUIRE(base);
        open(client, client_peer);
        open(backend, backend_peer);
    }

    void open(Stream& stream, UniqueFd& peer) {
        std::array<int, 2> fds{-1, -1};
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) ==
                0);
        REQUIRE(stream.open(base.get(), UniqueFd{fds[0]}, &ignore_event, nullptr));
        peer.reset(fds[1]);
    }

    static void send(const UniqueFd& to, std::string_view bytes) {
        REQUIRE(::write(to.get(), bytes.data(), bytes.size()) ==
                static_cast<ssize_t>(bytes.size()));
    }
    static std::string receive(const UniqueFd& from) {
        std::array<char, 4096> buffer{};
        const ssize_t n = ::read(from.get(), buffer.data(), buffer.size());
        return n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : std::string();
    }
};

}  // namespace

TEST_CASE("relay: during the dialogue a read feeds the machine's input, uncounted") {
    Sides s;
    Sides::send(s.client_peer, "a1 LOGIN u p\r\n");
    CHECK(s.relay.read(Peer::Client, false) == Io::Ok);
    CHECK(s.client.in.view() == "a1 LOGIN u p\r\n");
    CHECK(s.backend.out.empty());
    CHECK(s.relay.bytes_in() == 0);
    s.relay.client_consumed(5);
    CHECK(s.relay.bytes_in() == 5);
}

TEST_CASE("relay: relaying reads straight into the other side and counts both ways") {
    Sides s;
    Sides::send(s.client_peer, "a2 SELECT INBOX\r\n");
    CHECK(s.relay.read(Peer::Client, true) == Io::Ok);
    CHECK(s.client.in.empty());
    CHECK(s.backend.out.view() == "a2 SELECT INBOX\r\n");
    CHECK(s.relay.bytes_in() == 17);
    CHECK(s.relay.flush(Peer::Backend) == Io::Ok);
    CHECK(Sides::receive(s.backend_peer) == "a2 SELECT INBOX\r\n");

    Sides::send(s.backend_peer, "* 3 EXISTS\r\n");
    CHECK(s.relay.read(Peer::Backend, true) == Io::Ok);
    CHECK(s.client.out.view() == "* 3 EXISTS\r\n");
    CHECK(s.relay.bytes_out() == 12);
    CHECK(s.relay.flush(Peer::Client) == Io::Ok);
    CHECK(Sides::receive(s.client_peer) == "* 3 EXISTS\r\n");
    CHECK(s.relay.flush(Peer::Client) == Io::Again);  // nothing owed
}

TEST_CASE("relay: a side is not read while the other holds kHighWater unsent bytes") {
    Sides s;
    s.relay.send(Peer::Client, std::string(Relay::kHighWater, 'x'));
    CHECK(s.relay.bytes_out() == Relay::kHighWater);
    Sides::send(s.backend_peer, "more\r\n");
    CHECK(s.relay.read(Peer::Backend, true) == Io::Again);
    CHECK(s.relay.read(Peer::Backend, false) == Io::Again);
    CHECK(s.relay.flush(Peer::Client) == Io::Ok);  // some of it leaves
    CHECK(s.client.out.size() < Relay::kHighWater);
    CHECK(s.relay.read(Peer::Backend, true) == Io::Ok);
}

TEST_CASE("relay: replies that grew a buffer past kHighWater stop reads into it") {
    Sides s;
    // Grown in steps, as the machine's replies would: the buffer outgrows one chunk's room.
    s.relay.send(Peer::Client, std::string(10, 'a'));
    s.relay.send(Peer::Client, std::string(40000, 'b'));
    s.relay.send(Peer::Client, std::string(30000, 'c'));
    REQUIRE(s.client.out.size() > Relay::kHighWater);
    Sides::send(s.backend_peer, "more\r\n");
    CHECK(s.relay.read(Peer::Backend, true) == Io::Again);
    CHECK(s.relay.read(Peer::Backend, false) == Io::Again);
}

TEST_CASE("relay: no dialogue read while the machine holds kDialogueIn unconsumed bytes") {
    Sides s;
    s.client.in.append(std::string(10, 'a'));
    s.client.in.append(std::string(40000, 'b'));  // room for more, but over the cap
    Sides::send(s.client_peer, "a1 NOOP\r\n");
    CHECK(s.relay.read(Peer::Client, false) == Io::Again);
    s.client.in.consume(20000);
    CHECK(s.relay.read(Peer::Client, false) == Io::Ok);
}

TEST_CASE("relay: the dialogue's unconsumed input is capped at kDialogueIn") {
    Sides s;
    const std::string big(Relay::kDialogueIn + 100, 'y');
    std::size_t sent = 0;
    while (sent < big.size()) {
        const ssize_t n = ::write(s.client_peer.get(), big.data() + sent, big.size() - sent);
        REQUIRE(n > 0);
        sent += static_cast<std::size_t>(n);
    }
    while (s.relay.read(Peer::Client, false) == Io::Ok) {
    }
    CHECK(s.client.in.size() == Relay::kDialogueIn);
}

TEST_CASE("relay: a client owed kHighWater of replies is not read during the dialogue") {
    // Before TLS postern answers CAPA itself: a client pipelining without reading would
    // otherwise make its replies grow without bound.
    Sides s;
    s.relay.send(Peer::Client, std::string(Relay::kHighWater, 'x'));
    Sides::send(s.client_peer, "CAPA\r\n");
    CHECK_FALSE(s.relay.dialogue_has_room());
    CHECK(s.relay.read(Peer::Client, false) == Io::Again);
    CHECK(s.client.in.empty());
    CHECK(s.relay.flush(Peer::Client) == Io::Ok);  // the client reads some
    CHECK(s.relay.dialogue_has_room());
    CHECK(s.relay.read(Peer::Client, false) == Io::Ok);
    CHECK(s.client.in.view() == "CAPA\r\n");
}

TEST_CASE("relay: the backend's unconsumed input may hold the machine's longest line") {
    // Otherwise a backend line longer than kDialogueIn and shorter than max_backend_line
    // could never be read whole nor found too long: the session would freeze.
    Sides s;
    const std::string big(Relay::kDialogueIn * 2 + 100, 'z');
    std::size_t sent = 0;
    while (sent < big.size()) {
        const ssize_t n = ::write(s.backend_peer.get(), big.data() + sent, big.size() - sent);
        REQUIRE(n > 0);
        sent += static_cast<std::size_t>(n);
    }
    while (s.relay.read(Peer::Backend, false) == Io::Ok) {
    }
    CHECK(s.backend.in.size() == 65536);
}

TEST_CASE("relay: passthrough hands the machine's leftovers to the other side") {
    Sides s;
    s.client.in.append("QUIT\r\n");
    s.backend.in.append("250 ok\r\n");
    s.relay.start();
    CHECK(s.client.in.empty());
    CHECK(s.backend.in.empty());
    CHECK(s.backend.out.view() == "QUIT\r\n");
    CHECK(s.client.out.view() == "250 ok\r\n");
    CHECK(s.relay.bytes_in() == 6);
    CHECK(s.relay.bytes_out() == 8);
    CHECK(s.relay.client_said_goodbye(protocols::Protocol::Smtp));
}

TEST_CASE("relay: the goodbye tail follows the client's last bytes across reads") {
    Sides s;
    Sides::send(s.client_peer, "a9 LOG");
    CHECK(s.relay.read(Peer::Client, true) == Io::Ok);
    CHECK_FALSE(s.relay.client_said_goodbye(protocols::Protocol::Imap));
    Sides::send(s.client_peer, "OUT\r\n");
    s.client.on_ready(EV_READ);  // the edge the loop would report
    CHECK(s.relay.read(Peer::Client, true) == Io::Ok);
    CHECK(s.relay.client_said_goodbye(protocols::Protocol::Imap));
    Sides::send(s.client_peer, std::string(100, 'z') + "\r\n");
    s.client.on_ready(EV_READ);
    CHECK(s.relay.read(Peer::Client, true) == Io::Ok);
    CHECK_FALSE(s.relay.client_said_goodbye(protocols::Protocol::Imap));
}

TEST_CASE("relay: an end of stream marks the side") {
    Sides s;
    s.client_peer.reset();
    CHECK(s.relay.read(Peer::Client, true) == Io::Eof);
    CHECK(s.client.eof);
    CHECK(s.relay.read(Peer::Client, true) == Io::Again);  // never read again
}

TEST_CASE("relay: traffic moves the deadlines") {
    Sides s;
    const auto start = Deadlines::Clock::now();
    s.deadlines.tls_ready(start - 90s);  // quiet for 90 of the 100 s
    CHECK(s.deadlines.next(false).at < start + 11s);
    Sides::send(s.backend_peer, "* OK still here\r\n");
    CHECK(s.relay.read(Peer::Backend, true) == Io::Ok);
    CHECK(s.deadlines.next(false).at >= start + 100s);  // the backend talked: not idle
    // Those bytes are owed to the client: its turn to read started with that read.
    CHECK(s.deadlines.next(true).at >= start + 100s);
}

}  // namespace postern::proxy
