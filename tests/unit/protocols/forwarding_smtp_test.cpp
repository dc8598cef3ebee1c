// Forwarding the client's identity, SMTP: after the backend's greeting and before any client
// byte the backend gets XCLIENT; its reply (Postfix: a fresh 220 greeting) is read by postern,
// never relayed. Implicit TLS, STARTTLS listeners (after TLS, and on the plaintext path, where
// the EHLO replay follows the exchange), refusals and odd replies; every dialogue split at every
// byte offset (dialogue.hpp).

#include "protocols/machine.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace postern::protocols {
namespace {

using test::accepted;
using test::backend;
using test::cat;
using test::check_splits;
using test::client;
using test::event;
using test::identity;

ClientIdentity v4() {
    return {"203.0.113.7", 40000, "192.0.2.1", 465};
}
ClientIdentity v6() {
    return {"2001:db8::7", 40000, "2001:db8::1", 587};
}

constexpr std::string_view kXclientV4 =
    "XCLIENT ADDR=203.0.113.7 PORT=40000 NAME=[UNAVAILABLE]\r\n";
constexpr std::string_view kXclientV6 =
    "XCLIENT ADDR=IPV6:2001:db8::7 PORT=40000 NAME=[UNAVAILABLE]\r\n";
constexpr std::string_view kGreeting = "220-backend.test ESMTP Postfix\r\n220 Welcome\r\n";
// Postfix's answer to an accepted XCLIENT: the greeting again, as for a new connection.
constexpr std::string_view kXclientOk = "220 backend.test ESMTP Postfix\r\n";
constexpr std::string_view kXclientDenied = "550 5.7.0 Error: insufficient authorization\r\n";
constexpr std::string_view kEhlo =
    "250-backend.test\r\n250-PIPELINING\r\n250-XCLIENT NAME ADDR PROTO HELO\r\n250 8BITMIME\r\n";
constexpr std::string_view kEhloFiltered = "250-backend.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
constexpr std::string_view kUnavailable =
    "421 4.3.0 mx.test Service not available, try again later\r\n";

MachineSettings smtps() {  // port 465
    return test::settings_for(Protocol::Smtp);
}

MachineSettings submission(bool require_tls) {  // port 587, or 25 with require_tls = false
    MachineSettings s = test::starttls_settings_for(Protocol::Smtp, require_tls);
    s.smtp_extensions = std::make_shared<const std::vector<std::string>>(
        std::vector<std::string>{"PIPELINING", "8BITMIME"});
    return s;
}

// Implicit TLS with the identity handed over at accept; `rest` follows the TLS handshake.
test::Script forwarded(const ClientIdentity& id, const test::Script& rest) {
    test::Script script{identity(id), event(Event::TlsReady)};
    script.insert(script.end(), rest.begin(), rest.end());
    return script;
}

TEST_CASE("forwarding smtp: XCLIENT goes first, its reply stays with postern") {
    // The client speaks before the backend has even connected: its bytes wait.
    const auto t = check_splits(
        smtps(),
        forwarded(v4(), {client("EHLO c\r\n"), event(Event::BackendReady), backend(kGreeting),
                         client("MAIL FROM:<a@b>\r\n"), backend(kXclientOk), backend(kEhlo),
                         backend("250 2.1.0 Ok\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{"connect", cat({"to_backend:", kXclientV4}),
                                   cat({"to_client:", kGreeting}),
                                   "to_backend:EHLO c\r\nMAIL FROM:<a@b>\r\n",
                                   cat({"to_client:", kEhloFiltered, "250 2.1.0 Ok\r\n"})});
    CHECK(t.state == "command");
}

TEST_CASE("forwarding smtp: the machine waits in its own state, client bytes held back") {
    const auto t = check_splits(
        smtps(), forwarded(v4(), {event(Event::BackendReady), backend(kGreeting),
                                  client("EHLO c\r\n"), backend("220-backend.test\r\n")}));
    CHECK(t.state == "forwarding");
    CHECK(t.to_backend() == kXclientV4);
    CHECK(t.to_client().empty());
    CHECK(t.client_pending == "EHLO c\r\n");
}

TEST_CASE("forwarding smtp: IPv6 clients are written as Postfix reads them") {
    const auto t =
        check_splits(smtps(), forwarded(v6(), {event(Event::BackendReady), backend(kGreeting),
                                               backend(kXclientOk), client("EHLO c\r\n")}));
    CHECK(t.to_backend() == cat({kXclientV6, "EHLO c\r\n"}));
    CHECK(t.to_client() == kGreeting);
}

TEST_CASE("forwarding smtp: a refusal closes with 421, the client's bytes never forwarded") {
    for (const std::string_view refusal :
         {kXclientDenied, std::string_view("501-5.5.4 Bad ADDR syntax\r\n501 5.5.4 x\r\n"),
          std::string_view("421 4.3.2 backend.test Service unavailable - try again later\r\n"),
          std::string_view("554 backend.test ESMTP not accepting connections\r\n")}) {
        CAPTURE(refusal);
        const auto t =
            check_splits(smtps(), forwarded(v4(), {event(Event::BackendReady), backend(kGreeting),
                                                   client("EHLO c\r\n"), backend(refusal)}));
        CHECK(t.actions == std::vector<std::string>{"connect", cat({"to_backend:", kXclientV4}),
                                                    cat({"to_client:", kUnavailable}),
                                                    "close:forwarding_refused"});
    }
}

TEST_CASE("forwarding smtp: a greeting that refuses us keeps today's behaviour") {
    const auto t = check_splits(
        smtps(), forwarded(v4(), {event(Event::BackendReady),
                                  backend("554 5.7.1 backend.test No SMTP service here\r\n")}));
    CHECK(t.actions == std::vector<std::string>{
                           "connect", "to_client:554 5.7.1 backend.test No SMTP service here\r\n",
                           "close:backend_unreachable"});
}

TEST_CASE("forwarding smtp: an unreadable reply or a lost backend still owes the client 421") {
    const auto garbled = check_splits(
        smtps(),
        forwarded(v4(), {event(Event::BackendReady), backend(kGreeting), backend("garbage\r\n")}));
    CHECK(garbled.to_client() == kUnavailable);
    CHECK(garbled.actions.back() == "close:protocol_error");

    const auto lost =
        check_splits(smtps(), forwarded(v4(), {event(Event::BackendReady), backend(kGreeting),
                                               event(Event::BackendFailed)}));
    CHECK(lost.to_client() == kUnavailable);
    CHECK(lost.actions.back() == "close:backend_unreachable");
}

TEST_CASE("forwarding smtp: a greeting too long to hold is unreadable") {
    MachineSettings s = smtps();
    s.max_backend_line = 64;
    const auto t = check_splits(
        s, forwarded(v4(), {event(Event::BackendReady),
                            backend("220-backend.test ESMTP Postfix, line one\r\n"
                                    "220-backend.test ESMTP Postfix, line two\r\n220 x\r\n")}));
    CHECK(t.to_backend().empty());
    CHECK(t.actions.back() == "close:protocol_error");
}

TEST_CASE("forwarding smtp: too late once the backend is up: nothing is forwarded") {
    const auto t =
        check_splits(smtps(), {event(Event::TlsReady), event(Event::BackendReady), identity(v4()),
                               backend(kGreeting), client("EHLO c\r\n")});
    CHECK(t.to_backend() == "EHLO c\r\n");
}

TEST_CASE("forwarding smtp: STARTTLS listener: after TLS, before the client's EHLO") {
    const auto t =
        check_splits(submission(true), {identity(v4()), event(Event::ClientConnected),
                                        client("EHLO c\r\nSTARTTLS\r\n"), event(Event::TlsReady),
                                        event(Event::BackendReady), client("EHLO c\r\n"),
                                        backend(kGreeting), backend(kXclientOk), backend(kEhlo)});
    CHECK(t.to_backend() == cat({kXclientV4, "EHLO c\r\n"}));
    CHECK(t.to_client() == cat({"220 mx.test ESMTP ready\r\n",
                                "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
                                "220 2.0.0 Ready to start TLS\r\n", kEhloFiltered}));

    const auto refused = check_splits(
        submission(true), {identity(v4()), event(Event::ClientConnected), client("STARTTLS\r\n"),
                           event(Event::TlsReady), event(Event::BackendReady), backend(kGreeting),
                           client("EHLO c\r\n"), backend(kXclientDenied)});
    CHECK(refused.to_backend() == kXclientV4);
    CHECK(refused.to_client().ends_with(cat({"220 2.0.0 Ready to start TLS\r\n", kUnavailable})));
    CHECK(refused.actions.back() == "close:forwarding_refused");
}

TEST_CASE("forwarding smtp: plaintext path: XCLIENT, then the EHLO replay, then the command") {
    const auto t =
        check_splits(submission(false),
                     accepted({identity(v4()), client("EHLO c\r\nMAIL FROM:<a@b>\r\n"),
                               event(Event::BackendReady), backend(kGreeting), backend(kXclientOk),
                               backend(kEhlo), backend("250 2.1.0 Ok\r\n")}));
    CHECK(t.to_backend() == cat({kXclientV4, "EHLO c\r\nMAIL FROM:<a@b>\r\n"}));
    CHECK(t.to_client() == cat({"220 mx.test ESMTP ready\r\n",
                                "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
                                "250 2.1.0 Ok\r\n"}));
    CHECK(t.state == "command");
}

}  // namespace
}  // namespace postern::protocols
