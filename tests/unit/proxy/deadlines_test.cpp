// proxy::Deadlines: which of a session's timeouts applies and when, for every phase.

#include "proxy/deadlines.hpp"

#include <doctest/doctest.h>

namespace postern::proxy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = Deadlines::TimePoint;

const Deadlines::Limits kLimits{
    .handshake = seconds{10}, .idle = seconds{300}, .plaintext = seconds{30}};
const TimePoint t0 = Deadlines::Clock::now();

}  // namespace

TEST_CASE("deadlines: the handshake has its own limit, whatever else is pending") {
    Deadlines d{kLimits, t0};
    d.handshake(t0 + seconds{1});
    d.connecting(t0 + seconds{2});  // a plaintext client's backend: not the handshake's business
    const auto due = d.next(true);
    CHECK(due.which == Timeout::Handshake);
    CHECK(due.at == t0 + seconds{11});
    CHECK(d.expired(t0 + seconds{11} - milliseconds{1}, true) == Timeout::None);
    CHECK(d.expired(t0 + seconds{11}, true) == Timeout::Handshake);
}

TEST_CASE("deadlines: a STARTTLS listener's plaintext dialogue gets the plaintext limit") {
    Deadlines d{kLimits, t0};
    CHECK(d.quiet_limit() == seconds{30});
    CHECK(d.next(false).which == Timeout::Idle);
    CHECK(d.next(false).at == t0 + seconds{30});
    CHECK(d.expired(t0 + seconds{29}, false) == Timeout::None);
    CHECK(d.expired(t0 + seconds{30}, false) == Timeout::Idle);
}

TEST_CASE("deadlines: postern's plaintext dialogue ends plaintext_timeout after the connection") {
    Deadlines d{kLimits, t0};
    d.plaintext(t0 + seconds{2});      // after a PROXY header: still counted from the connection
    for (int s = 3; s < 30; s += 3) {  // a NOOP every 3 s keeps the quiet limit away
        d.client_seen(t0 + seconds{s});
    }
    CHECK(d.next(false).which == Timeout::Plaintext);
    CHECK(d.next(false).at == t0 + seconds{30});
    CHECK(d.expired(t0 + seconds{30} - milliseconds{1}, false) == Timeout::None);
    CHECK(d.expired(t0 + seconds{30}, false) == Timeout::Plaintext);
}

TEST_CASE("deadlines: TLS, or the backend taking a plaintext client, lifts the plaintext limit") {
    Deadlines tls{kLimits, t0};
    tls.plaintext(t0);
    tls.handshake(t0 + seconds{1});
    tls.tls_ready(t0 + seconds{2});
    CHECK(tls.expired(t0 + seconds{31}, false) == Timeout::None);
    Deadlines relayed{kLimits, t0};
    relayed.plaintext(t0);
    relayed.connecting(t0 + seconds{3});
    relayed.backend_ready();
    CHECK(relayed.next(false).which == Timeout::Idle);
    CHECK(relayed.expired(t0 + seconds{31}, false) == Timeout::None);
}

TEST_CASE("deadlines: TLS up: the idle limit applies, counted from the handshake's end") {
    Deadlines d{kLimits, t0};
    d.handshake(t0);
    d.tls_ready(t0 + seconds{5});
    CHECK(d.quiet_limit() == seconds{300});
    CHECK(d.next(false).which == Timeout::Idle);
    CHECK(d.next(false).at == t0 + seconds{305});
    CHECK(d.expired(t0 + seconds{304}, false) == Timeout::None);
    CHECK(d.expired(t0 + seconds{305}, false) == Timeout::Idle);
}

TEST_CASE("deadlines: a plaintext client handed to the backend idles like any other") {
    Deadlines d{kLimits, t0};
    d.connecting(t0 + seconds{3});
    d.backend_ready();
    CHECK(d.quiet_limit() == seconds{300});
    CHECK(d.next(false).which == Timeout::Idle);
    CHECK(d.expired(t0 + seconds{31}, false) == Timeout::None);
}

TEST_CASE("deadlines: idle means no bytes either way: a talking backend keeps a silent client") {
    Deadlines d{kLimits, t0};
    d.tls_ready(t0);
    d.backend_seen(t0 + seconds{200});
    CHECK(d.next(false).at == t0 + seconds{500});
    CHECK(d.expired(t0 + seconds{400}, false) == Timeout::None);
    d.client_seen(t0 + seconds{450});
    CHECK(d.next(false).at == t0 + seconds{750});
    CHECK(d.expired(t0 + seconds{749}, false) == Timeout::None);
    CHECK(d.expired(t0 + seconds{750}, false) == Timeout::Idle);
}

TEST_CASE("deadlines: a client not reading what it is owed times out on the quiet limit") {
    Deadlines d{kLimits, t0};
    d.tls_ready(t0);
    d.client_flushed(t0 + seconds{10});
    d.backend_seen(t0 + seconds{100});  // the backend keeps talking; the client takes nothing
    SUBCASE("only while bytes are owed") {
        CHECK(d.next(false).which == Timeout::Idle);
        CHECK(d.expired(t0 + seconds{310}, false) == Timeout::None);
    }
    SUBCASE("owed: due from the last write progress, ahead of idle") {
        const auto due = d.next(true);
        CHECK(due.which == Timeout::ClientNotReading);
        CHECK(due.at == t0 + seconds{310});
        CHECK(d.expired(t0 + seconds{309}, true) == Timeout::None);
        CHECK(d.expired(t0 + seconds{310}, true) == Timeout::ClientNotReading);
    }
    SUBCASE("it wins over idle when both have passed") {
        CHECK(d.expired(t0 + seconds{400}, true) == Timeout::ClientNotReading);
        CHECK(d.expired(t0 + seconds{400}, false) == Timeout::Idle);
    }
    SUBCASE("write progress moves it") {
        d.client_flushed(t0 + seconds{200});
        CHECK(d.next(true).which == Timeout::Idle);
        CHECK(d.expired(t0 + seconds{310}, true) == Timeout::None);
    }
}

TEST_CASE("deadlines: the backend connect has its own deadline until it is answered") {
    Deadlines d{kLimits, t0};
    d.tls_ready(t0);
    d.connecting(t0 + seconds{3});
    const auto due = d.next(false);
    CHECK(due.which == Timeout::BackendConnect);
    CHECK(due.at == t0 + seconds{3});
    CHECK(d.expired(t0 + seconds{3} - milliseconds{1}, false) == Timeout::None);
    CHECK(d.expired(t0 + seconds{3}, false) == Timeout::BackendConnect);
    SUBCASE("it wins over every quiet timeout") {
        CHECK(d.expired(t0 + seconds{1000}, true) == Timeout::BackendConnect);
    }
    SUBCASE("a later connect deadline does not hide an earlier idle one") {
        d.connecting(t0 + seconds{1000});
        CHECK(d.next(false).which == Timeout::Idle);
        CHECK(d.next(false).at == t0 + seconds{300});
    }
    SUBCASE("connected") {
        d.backend_ready();
        CHECK(d.next(false).which == Timeout::Idle);
        CHECK(d.expired(t0 + seconds{4}, false) == Timeout::None);
    }
    SUBCASE("failed") {
        d.connect_failed();
        CHECK(d.next(false).which == Timeout::Idle);
        CHECK(d.expired(t0 + seconds{4}, false) == Timeout::None);
    }
}

TEST_CASE("deadlines: closing: what the client is owed gets kCloseFlush, and nothing else counts") {
    Deadlines d{kLimits, t0};
    d.tls_ready(t0);
    d.connecting(t0 + seconds{3});
    d.closing(t0 + seconds{100});
    const auto due = d.next(true);
    CHECK(due.which == Timeout::CloseFlush);
    CHECK(due.at == t0 + seconds{100} + Deadlines::kCloseFlush);
    CHECK(Deadlines::kCloseFlush == seconds{5});
    CHECK(d.expired(t0 + seconds{104}, true) == Timeout::None);
    CHECK(d.expired(t0 + seconds{105}, true) == Timeout::CloseFlush);
}

TEST_CASE("deadlines: a draining session is due once quiet for kDrainQuiet, then again if busy") {
    Deadlines d{kLimits, t0};
    d.tls_ready(t0);
    d.client_seen(t0 + seconds{1});
    CHECK(d.next(false).which == Timeout::Idle);  // not draining: the idle limit only
    d.draining();
    auto due = d.next(false);
    CHECK(due.which == Timeout::DrainQuiet);
    CHECK(due.at == t0 + seconds{1} + Deadlines::kDrainQuiet);
    CHECK(d.expired(due.at - milliseconds{1}, false) == Timeout::None);
    CHECK(d.expired(due.at, false) == Timeout::DrainQuiet);
    // Traffic moves it on.
    d.backend_seen(t0 + seconds{2});
    CHECK(d.next(false).at == t0 + seconds{2} + Deadlines::kDrainQuiet);
    // Busy when looked at (a reply owed): looked at again kDrainQuiet later, not at once.
    const TimePoint looked = t0 + seconds{4};
    d.drain_busy(looked);
    CHECK(d.expired(looked, false) == Timeout::None);
    CHECK(d.next(false).at == looked + Deadlines::kDrainQuiet);
    CHECK(d.expired(looked + Deadlines::kDrainQuiet, false) == Timeout::DrainQuiet);
}

TEST_CASE("deadlines: a session quiet for long when the drain starts is due at once") {
    Deadlines d{kLimits, t0};
    d.tls_ready(t0);
    const TimePoint later = t0 + seconds{60};
    d.draining();
    CHECK(d.next(false).at <= later);
    CHECK(d.expired(later, false) == Timeout::DrainQuiet);
}

}  // namespace postern::proxy
