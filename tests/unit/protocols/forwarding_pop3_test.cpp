// Forwarding the client's identity, POP3: after a Dovecot greeting that offers "[XCLIENT]" and
// before any client byte the backend gets XCLIENT; its "+OK" is read by postern, never relayed.
// A greeting without "[XCLIENT]" means Dovecot does not trust us and would only say "+OK ...
// ignoring": refused at once. Implicit TLS, STARTTLS listeners, refusals; every dialogue split
// at every byte offset (dialogue.hpp).

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
    return {"203.0.113.7", 40000, "192.0.2.1", 995};
}
ClientIdentity v6() {
    return {"2001:db8::7", 40000, "2001:db8::1", 110};
}

constexpr std::string_view kXclientV4 =
    "XCLIENT ADDR=203.0.113.7 PORT=40000 DESTADDR=192.0.2.1 DESTPORT=995\r\n";
constexpr std::string_view kXclientV6 =
    "XCLIENT ADDR=2001:db8::7 PORT=40000 DESTADDR=2001:db8::1 DESTPORT=110\r\n";
// Dovecot greets the hosts in login_trusted_networks with "[XCLIENT]" (pop3-login/client.c).
constexpr std::string_view kTrustedGreeting = "+OK [XCLIENT] Dovecot ready. <1.2.3@backend>\r\n";
constexpr std::string_view kGreetingFiltered = "+OK Dovecot ready. <1.2.3@backend>\r\n";
constexpr std::string_view kUnavailable =
    "-ERR [SYS/TEMP] Backend server unavailable, try again later\r\n";

MachineSettings pop3s() {
    return test::settings_for(Protocol::Pop3);
}

test::Script forwarded(const ClientIdentity& id, const test::Script& rest) {
    test::Script script{identity(id), event(Event::TlsReady)};
    script.insert(script.end(), rest.begin(), rest.end());
    return script;
}

TEST_CASE("forwarding pop3: XCLIENT goes first, the client sees only the greeting") {
    const auto t = check_splits(
        pop3s(),
        forwarded(v4(), {client("USER joe\r\n"), event(Event::BackendReady),
                         backend(kTrustedGreeting), client("PASS secret\r\n"),
                         backend("+OK Updated\r\n"), backend("+OK\r\n+OK Logged in.\r\n")}));
    CHECK(t.actions == std::vector<std::string>{"connect", cat({"to_backend:", kXclientV4}),
                                                cat({"to_client:", kGreetingFiltered}),
                                                "to_backend:USER joe\r\nPASS secret\r\n",
                                                "to_client:+OK\r\n+OK Logged in.\r\n",
                                                "passthrough"});
}

TEST_CASE("forwarding pop3: the machine waits in its own state, client bytes held back") {
    const auto t =
        check_splits(pop3s(), forwarded(v6(), {event(Event::BackendReady),
                                               backend(kTrustedGreeting), client("CAPA\r\n")}));
    CHECK(t.state == "forwarding");
    CHECK(t.to_backend() == kXclientV6);
    CHECK(t.to_client().empty());
    CHECK(t.client_pending == "CAPA\r\n");
}

TEST_CASE("forwarding pop3: -ERR, or no [XCLIENT] in the greeting, closes") {
    const auto err = check_splits(
        pop3s(), forwarded(v4(), {event(Event::BackendReady), backend(kTrustedGreeting),
                                  client("USER joe\r\n"), backend("-ERR Invalid parameters\r\n")}));
    CHECK(err.actions == std::vector<std::string>{"connect", cat({"to_backend:", kXclientV4}),
                                                  cat({"to_client:", kUnavailable}),
                                                  "close:forwarding_refused"});
    const auto untrusted = check_splits(
        pop3s(), forwarded(v4(), {event(Event::BackendReady), backend("+OK Dovecot ready.\r\n"),
                                  client("USER joe\r\n")}));
    CHECK(untrusted.actions == std::vector<std::string>{"connect",
                                                        cat({"to_client:", kUnavailable}),
                                                        "close:forwarding_refused"});
    const auto odd =
        check_splits(pop3s(), forwarded(v4(), {event(Event::BackendReady),
                                               backend(kTrustedGreeting), backend("what?\r\n")}));
    CHECK(odd.to_client() == kUnavailable);
    CHECK(odd.actions.back() == "close:protocol_error");
    const auto refusing = check_splits(
        pop3s(), forwarded(v4(), {event(Event::BackendReady), backend("-ERR go away\r\n")}));
    CHECK(refusing.actions == std::vector<std::string>{"connect", "to_client:-ERR go away\r\n",
                                                       "close:backend_unreachable"});
}

TEST_CASE("forwarding pop3: STARTTLS listener, after TLS and on the plaintext path") {
    const auto tls =
        check_splits(test::starttls_settings_for(Protocol::Pop3, true),
                     {identity(v4()), event(Event::ClientConnected), client("STLS\r\n"),
                      event(Event::TlsReady), event(Event::BackendReady), backend(kTrustedGreeting),
                      client("USER joe\r\n"), backend("+OK Updated\r\n+OK\r\n")});
    CHECK(tls.to_backend() == cat({kXclientV4, "USER joe\r\n"}));
    CHECK(tls.to_client() == "+OK mx.test POP3 ready\r\n+OK Begin TLS negotiation\r\n+OK\r\n");

    const auto plain = check_splits(
        test::starttls_settings_for(Protocol::Pop3, false),
        accepted({identity(v6()), client("NOOP\r\n"), event(Event::BackendReady),
                  backend(kTrustedGreeting), backend("+OK Updated\r\n"), backend("+OK\r\n")}));
    CHECK(plain.to_backend() == cat({kXclientV6, "NOOP\r\n"}));
    CHECK(plain.to_client() == "+OK mx.test POP3 ready\r\n+OK\r\n");
}

}  // namespace
}  // namespace postern::protocols
