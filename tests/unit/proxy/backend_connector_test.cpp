// proxy::TcpConnector through the BackendConnector seam, against loopback sockets: an attempt
// reports through the session's callback and then hands over a connected fd, or a failure
// worded for the session's log line.
#include "proxy/backend_connector.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>

#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>

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

    explicit Loopback(bool listening) {
        REQUIRE(fd.get() >= 0);
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&in), sizeof(in)) == 0);
        address.length = sizeof(in);
        REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address.storage),
                              &address.length) == 0);
        if (listening) {
            REQUIRE(::listen(fd.get(), 4) == 0);
        }
    }
};

struct Attempting {
    EventBasePtr base{event_base_new()};
    Heard heard;
    BackendOutcome outcome;
    std::unique_ptr<BackendAttempt> attempt;

    // Starts an attempt through `connector` and runs the loop until it reports; false when
    // it failed at once (outcome.failure says why).
    bool run(const BackendConnector& connector) {
        const BackendRequest request{
            .base = base.get(), .callback = &on_attempt, .arg = &heard, .client = {}};
        attempt = connector.connect(request, outcome);
        if (!attempt) {
            return false;
        }
        while (heard.calls == 0) {
            REQUIRE(event_base_loop(base.get(), EVLOOP_ONCE) == 0);
        }
        CHECK(heard.calls == 1);
        CHECK(attempt->on_event(heard.what, outcome));
        return true;
    }
};

}  // namespace

TEST_CASE("tcp connector: a listening backend gives a connected fd, nothing to send first") {
    const Loopback backend{true};
    const TcpConnector connector{backend.address, 1500ms};
    CHECK(connector.timeout() == 1500ms);
    Attempting a;
    REQUIRE(a.run(connector));
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
    const TcpConnector connector{closed.address, 1500ms};
    Attempting a;
    if (a.run(connector)) {
        CHECK(a.outcome.fd.get() < 0);
        CHECK(a.outcome.failure.starts_with("backend connect: "));
    } else {
        CHECK(a.outcome.failure.starts_with("connect: "));
    }
    CHECK(a.outcome.failure.find("refused") != std::string::npos);
}

}  // namespace postern::proxy
