// proxy::TcpConnector through the BackendConnector seam, against loopback sockets: an attempt
// reports through the session's callback and then hands over a connected fd, or a failure
// worded for the session's log line.
#include "proxy/backend_connector.hpp"

#include "protocols/proxy_header.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <cstring>
#include <initializer_list>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace postern::proxy {
namespace {

using namespace std::chrono_literals;

struct Heard {
    int calls = 0;
    short what = 0;
};

void on_attempt(evutil_socket_t /*fd*/, short what, void* arg) {
    auto* heard = static_cast<Heard*>(arg);
    ++heard->calls;
    heard->what = what;
}

// A loopback TCP socket bound to a free port; listening or not.
struct Loopback {
    UniqueFd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    SocketAddress address;

    explicit Loopback(bool listening, int backlog = 4) {
        REQUIRE(fd.get() >= 0);
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&in), sizeof(in)) == 0);
        address.length = sizeof(in);
        REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address.storage),
                              &address.length) == 0);
        if (listening) {
            REQUIRE(::listen(fd.get(), backlog) == 0);
        }
    }
};

struct Attempting {
    EventBasePtr base{event_base_new()};
    Heard heard;
    BackendOutcome outcome;
    std::unique_ptr<BackendAttempt> attempt;

    // Starts an attempt through `connector` and runs the loop until it is decided; false when
    // it failed at once (outcome.failure says why).
    bool run(const BackendConnector& connector, ClientInfo client = {}) {
        const BackendRequest request{
            .base = base.get(), .callback = &on_attempt, .arg = &heard, .client = client};
        attempt = connector.connect(request, outcome);
        if (!attempt) {
            return false;
        }
        for (int seen = 0;;) {
            while (heard.calls == seen) {
                REQUIRE(event_base_loop(base.get(), EVLOOP_ONCE) == 0);
            }
            seen = heard.calls;
            if (attempt->on_event(heard.what, outcome)) {
                return true;
            }
        }
    }
};

std::shared_ptr<TcpConnector> connector_to(std::initializer_list<const Loopback*> backends,
                                           std::chrono::milliseconds timeout = 1500ms,
                                           conf::ProxyHeader header = conf::ProxyHeader::None) {
    std::vector<TcpConnector::Target> targets;
    for (const Loopback* b : backends) {
        targets.push_back({b->address, to_string(b->address.get())});
    }
    return std::make_shared<TcpConnector>("test", std::move(targets), timeout, header);
}

SocketAddress ipv4(const char* text, std::uint16_t port) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, text, &in.sin_addr) == 1);
    SocketAddress out;
    std::memcpy(&out.storage, &in, sizeof(in));
    out.length = sizeof(in);
    return out;
}

}  // namespace

TEST_CASE("tcp connector: a listening backend gives a connected fd, nothing to send first") {
    const Loopback backend{true};
    const auto connector = connector_to({&backend});
    CHECK(connector->timeout() == 2500ms);  // the address's timeout, and a second for the loop
    Attempting a;
    REQUIRE(a.run(*connector));
    CHECK((a.heard.what & EV_WRITE) != 0);
    REQUIRE(a.outcome.fd.get() >= 0);
    CHECK(a.outcome.failure.empty());
    CHECK(a.outcome.preamble.empty());
    int nodelay = 0;
    socklen_t length = sizeof(nodelay);
    REQUIRE(getsockopt(a.outcome.fd.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &length) == 0);
    CHECK(nodelay != 0);
    a.attempt.reset();  // the fd is the session's now: abandoning the attempt leaves it open
    CHECK(::send(a.outcome.fd.get(), "x", 1, MSG_NOSIGNAL) == 1);
}

TEST_CASE("tcp connector: a refused connect is a failure worded for the log") {
    const Loopback closed{false};  // bound, not listening: the kernel refuses
    const auto connector = connector_to({&closed});
    Attempting a;
    if (a.run(*connector)) {
        CHECK(a.outcome.fd.get() < 0);
        CHECK(a.outcome.failure.starts_with("connect: "));
    } else {
        CHECK(a.outcome.failure.starts_with("connect: "));
    }
    CHECK(a.outcome.failure.find("refused") != std::string::npos);
}

TEST_CASE("tcp connector: failover tries the next address; a failed one goes last for 30 s") {
    const Loopback closed{false};
    const Loopback backend{true};
    const auto connector = connector_to({&closed, &backend});
    CHECK(connector->order() == std::vector<std::size_t>{0, 1});
    Attempting a;
    REQUIRE(a.run(*connector));
    REQUIRE(a.outcome.fd.get() >= 0);
    CHECK(a.outcome.served == to_string(backend.address.get()));
    CHECK(connector->order() == std::vector<std::size_t>{1, 0});  // the dead one is demoted

    Attempting again;  // the next session goes straight to the live address
    REQUIRE(again.run(*connector));
    CHECK(again.heard.calls == 1);
    CHECK(again.outcome.served == to_string(backend.address.get()));
    connector->served(0);  // once it answers again it is back in its place
    CHECK(connector->order() == std::vector<std::size_t>{0, 1});
}

TEST_CASE("tcp connector: every address failing names each in the failure") {
    const Loopback first{false};
    const Loopback second{false};
    const auto connector = connector_to({&first, &second});
    Attempting a;
    static_cast<void>(a.run(*connector));
    CHECK(a.outcome.fd.get() < 0);
    CHECK(a.outcome.failure.find(to_string(first.address.get()) + ": connect: ") !=
          std::string::npos);
    CHECK(a.outcome.failure.find(to_string(second.address.get()) + ": connect: ") !=
          std::string::npos);
}

TEST_CASE("tcp connector: an address that does not answer in time is given up for the next") {
    // A listener that accepts nothing, its queue full: further SYNs are dropped, so a
    // connect() to it neither completes nor fails until its timeout.
    const Loopback stuck{true, 0};
    std::vector<UniqueFd> queued;
    for (int i = 0; i < 4; ++i) {
        queued.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        static_cast<void>(
            ::connect(queued.back().get(), stuck.address.get(), stuck.address.length));
    }
    const Loopback backend{true};
    const auto connector = connector_to({&stuck, &backend}, 300ms);
    Attempting a;
    REQUIRE(a.run(*connector));
    CHECK(a.heard.calls == 2);  // the stuck address's timeout, then the live one's connect
    REQUIRE(a.outcome.fd.get() >= 0);
    CHECK(a.outcome.served == to_string(backend.address.get()));
}

TEST_CASE("tcp connector: send_proxy puts the client's PROXY header first") {
    const Loopback backend{true};
    ClientInfo client;
    client.peer = ipv4("127.0.0.2", 50123);
    client.local = ipv4("127.0.0.1", 993);
    client.sni = "mail.a.test";
    client.tls_version = "TLSv1.3";
    client.cipher = "TLS_AES_256_GCM_SHA384";

    Attempting v1;
    REQUIRE(v1.run(*connector_to({&backend}, 1500ms, conf::ProxyHeader::V1), client));
    CHECK(v1.outcome.preamble == "PROXY TCP4 127.0.0.2 127.0.0.1 50123 993\r\n");

    Attempting v2;
    REQUIRE(v2.run(*connector_to({&backend}, 1500ms, conf::ProxyHeader::V2), client));
    namespace header = protocols::proxy_header;
    header::Header parsed;
    const auto result = header::parse(v2.outcome.preamble, parsed);
    REQUIRE(result.status == header::Status::Done);
    CHECK(result.consumed == v2.outcome.preamble.size());
    CHECK(header::to_string(parsed.source) == "127.0.0.2");
    CHECK(parsed.source.port == 50123);
    CHECK(parsed.destination.port == 993);
    CHECK(parsed.authority == "mail.a.test");
    REQUIRE(parsed.tls.has_value());
    CHECK(parsed.tls->version == "TLSv1.3");
    CHECK(parsed.tls->cipher == "TLS_AES_256_GCM_SHA384");

    Attempting local;  // no client (postern's own EHLO check): v2 LOCAL
    REQUIRE(local.run(*connector_to({&backend}, 1500ms, conf::ProxyHeader::V2)));
    REQUIRE(header::parse(local.outcome.preamble, parsed).status == header::Status::Done);
    CHECK(parsed.local);
}

TEST_CASE("tcp connector: v1 without a client names the connection's own endpoints") {
    // Postfix refuses "PROXY UNKNOWN"; postern's own EHLO check says who it is instead
    const Loopback backend{true};
    Attempting own;
    REQUIRE(own.run(*connector_to({&backend}, 1500ms, conf::ProxyHeader::V1)));
    REQUIRE(own.outcome.fd.get() >= 0);
    SocketAddress local;
    local.length = sizeof(local.storage);
    REQUIRE(::getsockname(own.outcome.fd.get(), reinterpret_cast<sockaddr*>(&local.storage),
                          &local.length) == 0);
    sockaddr_in mine{};
    sockaddr_in theirs{};
    std::memcpy(&mine, &local.storage, sizeof(mine));
    std::memcpy(&theirs, &backend.address.storage, sizeof(theirs));
    CHECK(own.outcome.preamble == "PROXY TCP4 127.0.0.1 127.0.0.1 " +
                                      std::to_string(ntohs(mine.sin_port)) + " " +
                                      std::to_string(ntohs(theirs.sin_port)) + "\r\n");
}

}  // namespace postern::proxy
