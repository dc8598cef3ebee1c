// proxy/client_limits.hpp: max_sessions across threads, the per-client counts (IPv6 by /64,
// IPv4-mapped as IPv4), rate windows on an injected clock, the table's cap and cleanup, the
// log throttle, the Admission handle and the replies of a refused connection.

#include "proxy/client_limits.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace postern::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = ClientLimits::Clock;

// A socket address from "203.0.113.7" or "2001:db8::1".
sockaddr_storage address(std::string_view text) {
    sockaddr_storage storage{};
    const std::string host{text};
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        REQUIRE(inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1);
        in6->sin6_family = AF_INET6;
    }
    return storage;
}

ClientKey key(std::string_view text) {
    const sockaddr_storage storage = address(text);
    return client_key(reinterpret_cast<const sockaddr*>(&storage));
}

ClientLimits::PerClient per_client(std::uint32_t sessions, conf::Rate rate = {}) {
    return {sessions, rate, "127.0.0.1:143"};
}

Limit admit(ClientLimits& limits, std::string_view client, Clock::time_point now,
            std::size_t listener = 0) {
    return limits.admit(listener, key(client), now).limit;
}

const Clock::time_point t0 = Clock::now();

}  // namespace

TEST_CASE("client limits: IPv4 whole, IPv6 by its /64, an IPv4-mapped address as IPv4") {
    CHECK(key("192.0.2.7").family == 4);
    CHECK(key("192.0.2.7") != key("192.0.2.8"));
    CHECK(key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    CHECK(key("2001:db8:1:2::1").family == 6);
    CHECK(key("2001:db8:1:2::1") != key("2001:db8:1:3::1"));
    CHECK(key("::ffff:192.0.2.7") == key("192.0.2.7"));
    const sockaddr unix_address{.sa_family = AF_UNIX, .sa_data = {}};
    CHECK(client_key(&unix_address).family == 0);
    CHECK(client_key(nullptr).family == 0);
}

TEST_CASE("client limits: max_sessions_per_client counts one address on one listener") {
    ClientLimits limits{100, {per_client(2), per_client(2)}};
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::MaxSessionsPerClient);
    CHECK(admit(limits, "192.0.2.8", t0) == Limit::None);     // another address
    CHECK(admit(limits, "192.0.2.7", t0, 1) == Limit::None);  // another listener
    limits.release(0, key("192.0.2.7"), t0);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::MaxSessionsPerClient);

    SUBCASE("a whole /64 is one client") {
        CHECK(admit(limits, "2001:db8::1", t0) == Limit::None);
        CHECK(admit(limits, "2001:db8::2:3", t0) == Limit::None);
        CHECK(admit(limits, "2001:db8::ffff", t0) == Limit::MaxSessionsPerClient);
        CHECK(admit(limits, "2001:db8:0:1::1", t0) == Limit::None);  // the next /64
    }
}

TEST_CASE("client limits: max_new_per_client admits count per window, then again after it") {
    ClientLimits limits{100, {per_client(0, conf::Rate{3, 10s})}};
    for (int i = 0; i < 3; ++i) {
        CHECK(admit(limits, "192.0.2.7", t0 + std::chrono::seconds{i}) == Limit::None);
        limits.release(0, key("192.0.2.7"), t0 + std::chrono::seconds{i});  // closed at once
    }
    CHECK(admit(limits, "192.0.2.7", t0 + 9s) == Limit::MaxNewPerClient);
    CHECK(admit(limits, "192.0.2.7", t0 + 9999ms) == Limit::MaxNewPerClient);
    CHECK(admit(limits, "192.0.2.8", t0 + 9s) == Limit::None);
    // The window counts from its first connection (t0): a new one begins at t0 + 10s.
    CHECK(admit(limits, "192.0.2.7", t0 + 10s) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0 + 11s) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0 + 12s) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0 + 19s) == Limit::MaxNewPerClient);
}

TEST_CASE("client limits: a refusal by count costs nothing of the rate") {
    ClientLimits limits{100, {per_client(1, conf::Rate{2, 10s})}};
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::MaxSessionsPerClient);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::MaxSessionsPerClient);
    limits.release(0, key("192.0.2.7"), t0);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::None);  // the second of two in the window
    limits.release(0, key("192.0.2.7"), t0);
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::MaxNewPerClient);
}

TEST_CASE("client limits: no per-client limit and no IP address are admitted untracked") {
    ClientLimits limits{100, {per_client(0), per_client(1)}};
    for (int i = 0; i < 10; ++i) {
        const ClientLimits::Verdict v = limits.admit(0, key("192.0.2.7"), t0);
        CHECK(v.limit == Limit::None);
        CHECK_FALSE(v.tracked);
    }
    const ClientLimits::Verdict other = limits.admit(1, ClientKey{}, t0);
    CHECK(other.limit == Limit::None);
    CHECK_FALSE(other.tracked);
    CHECK(limits.clients() == 0);
}

TEST_CASE("client limits: an entry goes when its last session ends and its window is over") {
    ClientLimits limits{100, {per_client(5, conf::Rate{5, 10s}), per_client(5)}};
    CHECK(admit(limits, "192.0.2.7", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.7", t0, 1) == Limit::None);
    CHECK(limits.clients() == 2);
    limits.release(1, key("192.0.2.7"), t0);  // no window on listener 1: gone at once
    CHECK(limits.clients() == 1);
    limits.release(0, key("192.0.2.7"), t0 + 1s);  // its window runs until t0 + 10s
    CHECK(limits.clients() == 1);

    SUBCASE("or by the next sweep after the window") {
        CHECK(admit(limits, "192.0.2.8", t0 + 11s) == Limit::None);
        CHECK(limits.clients() == 1);  // 192.0.2.7 swept, 192.0.2.8 counted
    }
    SUBCASE("not while a session is open") {
        CHECK(admit(limits, "192.0.2.7", t0 + 2s) == Limit::None);
        CHECK(admit(limits, "192.0.2.8", t0 + 30s) == Limit::None);
        CHECK(limits.clients() == 2);
        limits.release(0, key("192.0.2.7"), t0 + 31s);
        CHECK(limits.clients() == 1);
    }
}

TEST_CASE("client limits: a full table admits new addresses untracked, and frees up") {
    ClientLimits limits{100, {per_client(1, conf::Rate{1, 10s})}, 3};
    CHECK(admit(limits, "192.0.2.1", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.2", t0) == Limit::None);
    CHECK(admit(limits, "192.0.2.3", t0) == Limit::None);
    CHECK(limits.clients() == 3);
    for (int i = 0; i < 5; ++i) {  // over the cap: served, unlimited, not remembered
        const ClientLimits::Verdict v = limits.admit(0, key("192.0.2.4"), t0 + 1s);
        CHECK(v.limit == Limit::None);
        CHECK_FALSE(v.tracked);
    }
    CHECK(limits.clients() == 3);
    CHECK(admit(limits, "192.0.2.1", t0 + 1s) == Limit::MaxSessionsPerClient);  // still known
    limits.release(0, key("192.0.2.2"), t0 + 2s);
    limits.release(0, key("192.0.2.3"), t0 + 2s);
    // Their windows end at t0 + 10s; the sweep after that makes room.
    CHECK(admit(limits, "192.0.2.4", t0 + 11s) == Limit::None);
    CHECK(admit(limits, "192.0.2.4", t0 + 11s) == Limit::MaxSessionsPerClient);
    CHECK(limits.clients() == 2);
}

TEST_CASE("client limits: max_sessions holds across threads") {
    constexpr std::size_t kMax = 64;
    ClientLimits limits{kMax, {}};
    std::atomic<std::size_t> highest{0};
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            std::vector<int> held;
            for (int i = 0; i < 20'000; ++i) {
                if (limits.take_session()) {
                    held.push_back(i);
                    std::size_t seen = limits.sessions();
                    std::size_t top = highest.load();
                    while (seen > top && !highest.compare_exchange_weak(top, seen)) {
                    }
                }
                if (held.size() > 40 || (!held.empty() && i % 3 == 0)) {
                    held.pop_back();
                    limits.release_session();
                }
            }
            for (std::size_t i = 0; i < held.size(); ++i) {
                limits.release_session();
            }
        });
    }
    for (std::thread& t : threads) {
        t.join();
    }
    CHECK(highest.load() <= kMax);
    CHECK(limits.sessions() == 0);
}

TEST_CASE("client limits: one log line a second per listener and limit, with the count") {
    ClientLimits limits{100, {per_client(1), per_client(1)}};
    std::uint64_t suppressed = 99;
    CHECK(limits.log_due(0, Limit::MaxSessionsPerClient, t0, suppressed));
    CHECK(suppressed == 0);
    CHECK_FALSE(limits.log_due(0, Limit::MaxSessionsPerClient, t0 + 100ms, suppressed));
    CHECK_FALSE(limits.log_due(0, Limit::MaxSessionsPerClient, t0 + 999ms, suppressed));
    CHECK(limits.log_due(0, Limit::MaxNewPerClient, t0 + 500ms, suppressed));       // another limit
    CHECK(limits.log_due(1, Limit::MaxSessionsPerClient, t0 + 500ms, suppressed));  // listener
    CHECK(limits.log_due(0, Limit::MaxSessionsPerClient, t0 + 1s, suppressed));
    CHECK(suppressed == 2);
    CHECK(limits.log_due(0, Limit::MaxSessionsPerClient, t0 + 5s, suppressed));
    CHECK(suppressed == 0);
}

TEST_CASE("client limits: an Admission releases what it took, once, and moves") {
    ClientLimits limits{2, {per_client(1)}};
    const sockaddr_storage peer = address("192.0.2.7");
    const auto* sa = reinterpret_cast<const sockaddr*>(&peer);
    {
        Admission a{limits, 0};
        CHECK(a.take_session() == Limit::None);
        CHECK(a.admit_client(sa, t0) == Limit::None);
        Admission b{limits, 0};
        CHECK(b.take_session() == Limit::None);
        CHECK(b.admit_client(sa, t0) == Limit::MaxSessionsPerClient);
        Admission c{limits, 0};
        CHECK(c.take_session() == Limit::MaxSessions);
        CHECK(limits.sessions() == 2);
        Admission moved{std::move(a)};
        a.release();  // NOLINT(bugprone-use-after-move): a moved-from Admission holds nothing
        CHECK(limits.sessions() == 2);
        CHECK(limits.clients() == 1);
        moved.release();
        moved.release();
        CHECK(limits.sessions() == 1);
        CHECK(limits.clients() == 0);
    }
    CHECK(limits.sessions() == 0);
}

TEST_CASE(
    "client limits: STARTTLS listeners answer a refusal in their protocol; implicit TLS "
    "closes without a byte") {
    using conf::Protocol;
    using conf::TlsMode;
    CHECK(refusal_reply(Protocol::Smtp, TlsMode::StartTls, Limit::MaxSessionsPerClient,
                        "mx.example.net") ==
          "421 4.7.0 mx.example.net Too many connections from your address, try again later\r\n");
    CHECK(refusal_reply(Protocol::Smtp, TlsMode::StartTls, Limit::MaxNewPerClient, "") ==
          "421 4.7.0 Too many new connections from your address, try again later\r\n");
    CHECK(refusal_reply(Protocol::Smtp, TlsMode::StartTls, Limit::MaxSessions, "mx") ==
          "421 4.3.2 mx Too many connections, try again later\r\n");
    CHECK(refusal_reply(Protocol::Imap, TlsMode::StartTls, Limit::MaxSessionsPerClient, "mx") ==
          "* BYE [UNAVAILABLE] Too many connections from your address, try again later\r\n");
    CHECK(refusal_reply(Protocol::Imap, TlsMode::StartTls, Limit::MaxSessions, "mx") ==
          "* BYE [UNAVAILABLE] Too many connections, try again later\r\n");
    CHECK(refusal_reply(Protocol::Pop3, TlsMode::StartTls, Limit::MaxNewPerClient, "mx") ==
          "-ERR [SYS/TEMP] Too many new connections from your address, try again later\r\n");
    for (const Protocol p : {Protocol::Imap, Protocol::Pop3, Protocol::Smtp}) {
        for (const Limit l :
             {Limit::MaxSessions, Limit::MaxSessionsPerClient, Limit::MaxNewPerClient}) {
            CHECK(refusal_reply(p, TlsMode::Implicit, l, "mx").empty());
        }
    }
}

}  // namespace postern::proxy
