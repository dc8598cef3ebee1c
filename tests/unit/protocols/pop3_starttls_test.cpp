// POP3 machine on STARTTLS listeners (RFC 2595 §4 STLS, RFC 2449 CAPA): postern's own
// AUTHORIZATION state before TLS, the upgrade, Dovecot's greeting read and dropped after it,
// the plaintext-backend path (require_tls = false), and the injection and limit cases; every
// dialogue split at every byte offset (dialogue.hpp).

#include "protocols/machine.hpp"
#include "protocols/replies.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace postern::protocols {
namespace {

using test::accepted;
using test::AtStartTls;
using test::backend;
using test::cat;
using test::check_splits;
using test::client;
using test::event;

constexpr std::string_view kOurGreeting = "+OK mx.test POP3 ready\r\n";
constexpr std::string_view kOurCapa =
    "+OK Capability list follows\r\nSTLS\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n";
constexpr std::string_view kDovecotGreeting = "+OK Dovecot (Debian) ready.\r\n";
constexpr std::string_view kDovecotCapa =
    "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\n"
    "SASL PLAIN LOGIN\r\n.\r\n";
constexpr std::string_view kDovecotCapaFiltered =
    "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\n"
    "SASL PLAIN LOGIN\r\n.\r\n";
constexpr std::string_view kGoAhead = "+OK Begin TLS negotiation\r\n";

MachineSettings pop3() {
    return test::starttls_settings_for(Protocol::Pop3, true);
}

// The upgrade and the backend connection after it: TLS done, backend up, greeting dropped.
test::Script upgraded(test::Script before, const test::Script& after) {
    return test::upgraded(kDovecotGreeting, std::move(before), after);
}

TEST_CASE("pop3 starttls: own CAPA, STLS, then Dovecot's dialogue filtered, Passthrough") {
    const auto t = check_splits(
        pop3(),
        upgraded({client("CAPA\r\n"), client("STLS\r\n")},
                 {client("CAPA\r\n"), backend(kDovecotCapa), client("USER joe\r\nPASS secret\r\n"),
                  backend("+OK\r\n+OK Logged in.\r\n"), client("STAT\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{cat({"to_client:", kOurGreeting, kOurCapa, kGoAhead}),
                                   "start_tls", "connect", "to_backend:CAPA\r\n",
                                   cat({"to_client:", kDovecotCapaFiltered}),
                                   "to_backend:USER joe\r\nPASS secret\r\n",
                                   "to_client:+OK\r\n+OK Logged in.\r\n", "passthrough"});
    CHECK(t.raw_to_backend == "STAT\r\n");
}

TEST_CASE("pop3 starttls: USER pipelined after STLS is never executed") {
    for (const AtStartTls at : {AtStartTls::Drop, AtStartTls::Reoffer}) {
        const auto t = check_splits(
            pop3(),
            upgraded({client("STLS\r\nUSER u\r\n")}, {client("CAPA\r\n"), backend(kDovecotCapa)}),
            at);
        CHECK(t.to_backend() == "CAPA\r\n");
        CHECK(t.to_client() == cat({kOurGreeting, kGoAhead, kDovecotCapaFiltered}));
    }
    auto machine = make_machine(pop3());
    Actions out;
    machine->on_event(Event::ClientConnected, out);
    out.clear();
    CHECK(machine->on_bytes(Peer::Client, "STLS\r\nUSER u\r\n", out) == 6);
    REQUIRE(out.size() == 2);
    CHECK(std::holds_alternative<StartTls>(out[1]));
}

TEST_CASE("pop3 starttls: credentials are refused before TLS, the rest is -ERR") {
    MachineSettings s = pop3();
    s.max_errors = 100;
    const auto t = check_splits(
        s, accepted({client("USER joe\r\nPASS secret\r\nAPOP joe 0123\r\nAUTH PLAIN\r\n"
                            "AUTH\r\nSTAT\r\nNOOP\r\n\r\nCAPA x\r\nSTLS now\r\nQUIT\r\n")}));
    const std::string auth(replies::kPop3PrivacyRequired);
    CHECK(t.to_client() ==
          cat({kOurGreeting, auth, auth, auth, auth, auth, "-ERR Unknown command\r\n",
               "-ERR Unknown command\r\n-ERR Unknown command\r\n",
               "-ERR Unexpected arguments\r\n-ERR Unexpected arguments\r\n+OK Logging out\r\n"}));
    CHECK(t.actions.back() == "close:client_quit");
    CHECK_FALSE(t.has("connect"));
}

TEST_CASE("pop3 starttls: errors in a row, limits and bad bytes close the session") {
    MachineSettings few = pop3();
    few.max_errors = 2;
    const auto errors =
        check_splits(few, accepted({client("USER a\r\nCAPA\r\nUSER b\r\nPASS c\r\nCAPA\r\n")}));
    CHECK(errors.to_client() ==
          cat({kOurGreeting, replies::kPop3PrivacyRequired, kOurCapa, replies::kPop3PrivacyRequired,
               replies::kPop3PrivacyRequired, "-ERR Too many invalid commands\r\n"}));
    CHECK(errors.actions.back() == "close:too_many_errors");

    MachineSettings s = pop3();
    s.max_line = 8;
    CHECK(check_splits(s, accepted({client("CAPA  \r\n")})).to_client().ends_with(".\r\n"));
    const auto over = check_splits(s, accepted({client("CAPA   \r\n")}));
    CHECK(over.to_client() == cat({kOurGreeting, replies::kPop3LineTooLong}));
    CHECK(over.actions.back() == "close:line_too_long");

    const auto nul = check_splits(pop3(), accepted({client(std::string("STLS\0\r\n", 7))}));
    CHECK(nul.to_client() == cat({kOurGreeting, replies::kPop3NulByte}));
    CHECK(nul.actions.back() == "close:protocol_error");

    const auto junk = check_splits(pop3(), accepted({client("CA\x01PA\r\n")}));
    CHECK(junk.to_client() == cat({kOurGreeting, replies::kPop3Junk}));
    CHECK(junk.actions.back() == "close:protocol_error");
}

TEST_CASE("pop3 starttls: backend greeting refusals after TLS") {
    const test::Script start =
        accepted({client("STLS\r\n"), event(Event::TlsReady), event(Event::BackendReady)});
    test::Script refused = start;
    refused.push_back(backend("-ERR [SYS/TEMP] Too many connections\r\n"));
    const auto r = check_splits(pop3(), refused);
    CHECK(r.to_client() ==
          cat({kOurGreeting, kGoAhead, "-ERR [SYS/TEMP] Too many connections\r\n"}));
    CHECK(r.actions.back() == "close:backend_unreachable");

    test::Script odd = start;
    odd.push_back(backend("* OK IMAP\r\n"));
    const auto o = check_splits(pop3(), odd);
    CHECK(o.to_client().ends_with(replies::kPop3BackendUnavailable));
    CHECK(o.actions.back() == "close:protocol_error");

    test::Script failed = start;
    failed.back() = event(Event::BackendFailed);
    const auto f = check_splits(pop3(), failed);
    CHECK(f.to_client().ends_with(replies::kPop3BackendUnavailable));
    CHECK(f.actions.back() == "close:backend_unreachable");
}

TEST_CASE("pop3 starttls: a second STLS after TLS is -ERR") {
    const auto t = check_splits(pop3(), upgraded({client("STLS\r\n")}, {client("STLS\r\n")}));
    CHECK(t.to_client() == cat({kOurGreeting, kGoAhead, replies::kPop3TlsActive}));
    CHECK(t.to_backend().empty());
}

// Issue 13: with require_tls = false, CAPA offered USER before TLS and USER/PASS went to the
// backend in plaintext, which logged the user in (the backend sees every client come from
// postern).
TEST_CASE("pop3 starttls: without require_tls, credentials still wait for TLS") {
    const std::string refused(replies::kPop3PrivacyRequired);
    const auto t = check_splits(
        test::starttls_settings_for(Protocol::Pop3, false),
        accepted({client("CAPA\r\nUSER joe\r\nPASS secret\r\nAPOP joe 0123456789abcdef\r\n"
                         "AUTH PLAIN\r\nauth\r\nQUIT\r\n")}));
    CHECK(t.to_client() == cat({kOurGreeting, kOurCapa, refused, refused, refused, refused, refused,
                                "+OK Logging out\r\n"}));
    CHECK_FALSE(t.has("connect"));

    // Gone on in plaintext (a command only the backend answers): credentials are refused in
    // their turn, never forwarded, and the backend's CAPA loses USER and SASL.
    const auto relayed =
        check_splits(test::starttls_settings_for(Protocol::Pop3, false),
                     accepted({client("NOOP\r\nUSER joe\r\nCAPA\r\n"), event(Event::BackendReady),
                               backend(kDovecotGreeting), backend("-ERR Unknown command.\r\n"),
                               backend(kDovecotCapa), client("PASS secret\r\nSTLS\r\n")}));
    CHECK(relayed.to_backend() == "NOOP\r\nCAPA\r\n");
    const std::string plaintext_capa =
        "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n.\r\n";
    CHECK(relayed.to_client() ==
          cat({kOurGreeting, "-ERR Unknown command.\r\n", refused, plaintext_capa, refused,
               "-ERR TLS is not available now\r\n"}));
    CHECK_FALSE(relayed.has("passthrough"));
}

}  // namespace
}  // namespace postern::protocols
