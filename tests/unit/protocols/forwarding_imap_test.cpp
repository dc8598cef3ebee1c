// Forwarding the client's identity, IMAP: after the backend's greeting and before any client
// byte the backend gets postern's own ID with Dovecot's x-originating/x-connected fields; the
// untagged "* ID" data and the tagged reply are read by postern, never relayed. Implicit TLS
// (the client sees the backend's greeting once the exchange succeeded), STARTTLS listeners,
// PREAUTH, refusals; every dialogue split at every byte offset (dialogue.hpp).

#include "protocols/machine.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

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
    return {"203.0.113.7", 40000, "192.0.2.1", 993};
}
ClientIdentity v6() {
    return {"2001:db8::7", 40000, "2001:db8::1", 143};
}

constexpr std::string_view kIdV4 =
    "postern ID (\"x-originating-ip\" \"203.0.113.7\" \"x-originating-port\" \"40000\" "
    "\"x-connected-ip\" \"192.0.2.1\" \"x-connected-port\" \"993\")\r\n";
constexpr std::string_view kIdV6 =
    "postern ID (\"x-originating-ip\" \"2001:db8::7\" \"x-originating-port\" \"40000\" "
    "\"x-connected-ip\" \"2001:db8::1\" \"x-connected-port\" \"143\")\r\n";
constexpr std::string_view kGreeting =
    "* OK [CAPABILITY IMAP4rev1 ID STARTTLS AUTH=PLAIN] Dovecot ready.\r\n";
constexpr std::string_view kGreetingFiltered =
    "* OK [CAPABILITY IMAP4rev1 ID AUTH=PLAIN] Dovecot ready.\r\n";
// Dovecot's answer to a trusted proxy's ID (imap-login-cmd-id.c).
constexpr std::string_view kIdOk =
    "* ID (\"name\" \"Dovecot\")\r\npostern OK Trusted ID completed.\r\n";
constexpr std::string_view kUnavailable =
    "* BYE [UNAVAILABLE] Backend server unavailable, try again later\r\n";

MachineSettings imaps() {
    return test::settings_for(Protocol::Imap);
}

test::Script forwarded(const ClientIdentity& id, const test::Script& rest) {
    test::Script script{identity(id), event(Event::TlsReady)};
    script.insert(script.end(), rest.begin(), rest.end());
    return script;
}

TEST_CASE("forwarding imap: ID goes first, the client sees only the backend's greeting") {
    const auto t = check_splits(
        imaps(),
        forwarded(v4(),
                  {client("a1 CAPABILITY\r\n"), event(Event::BackendReady), backend(kGreeting),
                   client("a2 LOGIN joe secret\r\n"), backend(kIdOk),
                   backend("* CAPABILITY IMAP4rev1 ID\r\na1 OK done\r\na2 OK Logged in\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{
              "connect", cat({"to_backend:", kIdV4}), cat({"to_client:", kGreetingFiltered}),
              "to_backend:a1 CAPABILITY\r\na2 LOGIN joe secret\r\n",
              cat({"to_client:* CAPABILITY IMAP4rev1 ID\r\n", "a1 OK done\r\na2 OK Logged in\r\n"}),
              "passthrough"});
}

TEST_CASE("forwarding imap: the exchange is read whole, literals included, then the relay") {
    const auto t = check_splits(
        imaps(),
        forwarded(v6(), {event(Event::BackendReady), backend(kGreeting), client("a1 NOOP\r\n"),
                         backend("* ID (\"name\" {7}\r\nDovecot \"os\" NIL)\r\n"
                                 "* OK [ALERT] not for the client\r\n"),
                         backend("postern OK ID completed.\r\na1 OK NOOP completed\r\n")}));
    CHECK(t.to_backend() == cat({kIdV6, "a1 NOOP\r\n"}));
    CHECK(t.to_client() == cat({kGreetingFiltered, "a1 OK NOOP completed\r\n"}));
    CHECK(t.state == "auth");
}

TEST_CASE("forwarding imap: the machine waits in its own state, client bytes held back") {
    const auto t =
        check_splits(imaps(), forwarded(v4(), {event(Event::BackendReady), backend(kGreeting),
                                               client("a1 NOOP\r\n"), backend("* ID NIL\r\n")}));
    CHECK(t.state == "forwarding");
    CHECK(t.to_client().empty());
    CHECK(t.client_pending == "a1 NOOP\r\n");
}

TEST_CASE("forwarding imap: NO or BAD to our ID closes, nothing of the client forwarded") {
    for (const std::string_view refusal :
         {std::string_view("postern NO [PRIVACYREQUIRED] not trusted\r\n"),
          std::string_view("* BAD noise\r\npostern BAD Unknown command ID\r\n")}) {
        CAPTURE(refusal);
        const auto t = check_splits(
            imaps(), forwarded(v4(), {event(Event::BackendReady), backend(kGreeting),
                                      client("a1 LOGIN joe secret\r\n"), backend(refusal)}));
        CHECK(t.actions == std::vector<std::string>{"connect", cat({"to_backend:", kIdV4}),
                                                    cat({"to_client:", kUnavailable}),
                                                    "close:forwarding_refused"});
    }
    const auto bye =
        check_splits(imaps(), forwarded(v4(), {event(Event::BackendReady), backend(kGreeting),
                                               backend("* BYE Server shutting down\r\n")}));
    CHECK(bye.to_client() == kUnavailable);
    CHECK(bye.actions.back() == "close:backend_unreachable");
}

TEST_CASE("forwarding imap: a refusing greeting; a greeting is one line, whatever it ends in") {
    const auto bye = check_splits(
        imaps(), forwarded(v4(), {event(Event::BackendReady), backend("* BYE Too many\r\n")}));
    CHECK(bye.actions == std::vector<std::string>{"connect", "to_client:* BYE Too many\r\n",
                                                  "close:backend_unreachable"});
    // A status response carries no literal (RFC 9051 §7.1): "{3}" is its text.
    const auto text =
        check_splits(imaps(), forwarded(v4(), {event(Event::BackendReady),
                                               backend("* OK [ALERT] {3}\r\n"), backend(kIdOk)}));
    CHECK(text.actions == std::vector<std::string>{"connect", cat({"to_backend:", kIdV4}),
                                                   "to_client:* OK [ALERT] {3}\r\n"});
    CHECK(text.state == "auth");
}

TEST_CASE("forwarding imap: PREAUTH is relayed after the exchange, then Passthrough") {
    const auto t = check_splits(
        imaps(), forwarded(v4(), {event(Event::BackendReady),
                                  backend("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
                                  client("a1 SELECT INBOX\r\n"), backend(kIdOk)}));
    CHECK(t.actions == std::vector<std::string>{"connect", cat({"to_backend:", kIdV4}),
                                                "to_client:* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
                                                "passthrough"});
    CHECK(t.raw_to_backend == "a1 SELECT INBOX\r\n");
}

TEST_CASE("forwarding imap: STARTTLS listener, after TLS and on the plaintext path") {
    const auto tls = check_splits(
        test::starttls_settings_for(Protocol::Imap, true),
        {identity(v4()), event(Event::ClientConnected), client("a STARTTLS\r\n"),
         event(Event::TlsReady), event(Event::BackendReady), client("b LOGIN joe secret\r\n"),
         backend(kGreeting), backend(kIdOk), backend("b OK Logged in\r\n")});
    CHECK(tls.to_backend() == cat({kIdV4, "b LOGIN joe secret\r\n"}));
    CHECK(tls.to_client() ==
          "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] mx.test IMAP4 ready\r\n"
          "a OK Begin TLS negotiation now\r\nb OK Logged in\r\n");

    const auto plain = check_splits(
        test::starttls_settings_for(Protocol::Imap, false),
        accepted({identity(v6()), client("a1 ID NIL\r\n"), event(Event::BackendReady),
                  backend(kGreeting), backend(kIdOk), backend("* ID NIL\r\na1 OK ID done\r\n")}));
    CHECK(plain.to_backend() == cat({kIdV6, "a1 ID NIL\r\n"}));
    CHECK(plain.to_client() ==
          "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] mx.test IMAP4 ready\r\n"
          "* ID NIL\r\na1 OK ID done\r\n");

    const auto refused =
        check_splits(test::starttls_settings_for(Protocol::Imap, false),
                     accepted({identity(v4()), client("a1 ID NIL\r\n"), event(Event::BackendReady),
                               backend(kGreeting), backend("postern NO not trusted\r\n")}));
    CHECK(refused.to_backend() == kIdV4);
    CHECK(refused.to_client().ends_with(kUnavailable));
    CHECK(refused.actions.back() == "close:forwarding_refused");
}

}  // namespace
}  // namespace postern::protocols
