// proxy::BackendEhlo against a fake SMTP backend on loopback (a thread with blocking sockets):
// what it learns from a normal EHLO reply, and that a reply longer than the bound is given up
// while reading (connection closed, nothing learned) instead of being collected to its end.
#include "proxy/backend_ehlo.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <chrono>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

namespace postern::proxy {
namespace {

using namespace std::chrono_literals;

// Accepts one connection, greets, waits for the EHLO line, answers `reply`, then records what
// it receives until the peer closes (or 5 s pass).
class FakeSmtp {
public:
    explicit FakeSmtp(std::string reply) : reply_(std::move(reply)) {
        REQUIRE(listener_.get() >= 0);
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&in), sizeof(in)) == 0);
        address_.length = sizeof(in);
        REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address_.storage),
                              &address_.length) == 0);
        REQUIRE(::listen(listener_.get(), 1) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    FakeSmtp(const FakeSmtp&) = delete;
    FakeSmtp& operator=(const FakeSmtp&) = delete;
    FakeSmtp(FakeSmtp&&) = delete;
    FakeSmtp& operator=(FakeSmtp&&) = delete;
    ~FakeSmtp() { thread_.join(); }

    [[nodiscard]] const SocketAddress& address() const { return address_; }
    [[nodiscard]] bool done() const { return done_.load(); }
    [[nodiscard]] std::string received() const { return done_.load() ? received_ : ""; }

private:
    void serve() {
        pollfd p{listener_.get(), POLLIN, 0};
        if (::poll(&p, 1, 5000) == 1) {
            const UniqueFd c{::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC)};
            const timeval t{5, 0};
            ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &t, sizeof(t));
            send_all(c.get(), "220 fake.test ESMTP\r\n");
            read_until(c.get(), [this] { return received_.find('\n') != std::string::npos; });
            send_all(c.get(), reply_);
            read_until(c.get(), [] { return false; });
        }
        done_ = true;
    }
    template <class Enough>
    void read_until(int fd, Enough enough) {
        std::array<char, 4096> buffer{};
        while (!enough()) {
            const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
            if (n <= 0) {
                return;
            }
            received_.append(buffer.data(), static_cast<std::size_t>(n));
        }
    }
    static void send_all(int fd, std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return;  // the probe gave up and closed: fine
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    std::string reply_;
    UniqueFd listener_{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    SocketAddress address_;
    std::string received_;  // read by the test once done_
    std::atomic<bool> done_{false};
    std::thread thread_;
};

// Runs BackendEhlo's probe against `fake` until the fake saw the connection end (at most 5 s).
Extensions learn(FakeSmtp& fake) {
    const EventBasePtr base{event_base_new()};
    ChildReaper children(base.get());
    std::vector<TcpConnector::Target> targets{{fake.address(), "fake"}};
    auto connector =
        std::make_shared<TcpConnector>("fake", std::move(targets), 1500ms, conf::ProxyHeader::None);
    BackendEhlo ehlo("fake", connector, "postern.test");
    ehlo.start(base.get(), children);
    // A tick, so the loop comes back to look at the fake's flag.
    const EventPtr tick{event_new(
        base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr)};
    const timeval every{0, 10000};
    evtimer_add(tick.get(), &every);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!fake.done() && std::chrono::steady_clock::now() < deadline) {
        REQUIRE(event_base_loop(base.get(), EVLOOP_ONCE) == 0);
    }
    REQUIRE(fake.done());
    return ehlo.extensions();
}

TEST_CASE("backend ehlo: a normal reply is learned, then QUIT") {
    FakeSmtp fake("250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n");
    const Extensions learned = learn(fake);
    CHECK(*learned == std::vector<std::string>{"PIPELINING", "SIZE 1000", "CHUNKING"});
    CHECK(fake.received() == "EHLO postern.test\r\nQUIT\r\n");
}

// Before the bound the whole reply was collected (and cut to 64 afterwards): a backend that
// never ends its reply grew the learner without limit.
TEST_CASE("backend ehlo: a reply over the line limit is given up while reading") {
    std::string reply = "250-fake.test\r\n";
    for (int i = 0; i < 200; ++i) {
        reply += "250-EXTENSION" + std::to_string(i) + "\r\n";
    }
    reply += "250 END\r\n";
    FakeSmtp fake(reply);
    const Extensions learned = learn(fake);
    CHECK(learned->empty());
    CHECK(fake.received() == "EHLO postern.test\r\n");  // closed without a QUIT
}

}  // namespace
}  // namespace postern::proxy
