// IMAP machine on STARTTLS listeners (RFC 9051 §6.2.1, RFC 2595): postern's own
// not-authenticated state before TLS, the upgrade, Dovecot's greeting read and dropped after
// it, and the injection and limit cases (the plaintext-backend path, require_tls = false, is
// imap_cleartext_test.cpp); every dialogue split at every byte offset (dialogue.hpp).

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

constexpr std::string_view kOurGreeting =
    "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] mx.test IMAP4 ready\r\n";
constexpr std::string_view kDovecotGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    "LOGINDISABLED] Dovecot (Debian) ready.\r\n";

MachineSettings imap() {
    return test::starttls_settings_for(Protocol::Imap, true);
}

// The upgrade and the backend connection after it: TLS done, backend up, greeting dropped.
test::Script upgraded(test::Script before, const test::Script& after) {
    return test::upgraded(kDovecotGreeting, std::move(before), after);
}

TEST_CASE("imap starttls: own capabilities, upgrade, Dovecot's dialogue filtered, Passthrough") {
    const auto t = check_splits(
        imap(),
        upgraded({client("a1 CAPABILITY\r\na2 NOOP\r\n"), client("a3 STARTTLS\r\n")},
                 {client("a4 CAPABILITY\r\n"),
                  backend("* CAPABILITY IMAP4rev1 SASL-IR ID IDLE LITERAL+ STARTTLS AUTH=PLAIN\r\n"
                          "a4 OK Pre-login capabilities listed.\r\n"),
                  client("a5 LOGIN joe secret\r\n"),
                  backend("a5 OK [CAPABILITY IMAP4rev1 IDLE STARTTLS MOVE] Logged in\r\n"),
                  client("a6 SELECT INBOX\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{
              cat({"to_client:", kOurGreeting,
                   "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"
                   "a1 OK CAPABILITY completed\r\na2 OK NOOP completed\r\n"
                   "a3 OK Begin TLS negotiation now\r\n"}),
              "start_tls", "connect", "to_backend:a4 CAPABILITY\r\n",
              cat({"to_client:* CAPABILITY IMAP4rev1 SASL-IR ID IDLE LITERAL+ AUTH=PLAIN\r\n",
                   "a4 OK Pre-login capabilities listed.\r\n"}),
              "to_backend:a5 LOGIN joe secret\r\n",
              "to_client:a5 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n", "passthrough"});
    CHECK(t.raw_to_backend == "a6 SELECT INBOX\r\n");
}

TEST_CASE("imap starttls: a command pipelined after STARTTLS is never executed") {
    for (const AtStartTls at : {AtStartTls::Drop, AtStartTls::Reoffer}) {
        const auto t = check_splits(
            imap(),
            upgraded({client("a STARTTLS\r\nb LOGIN u p\r\n")},
                     {client("c CAPABILITY\r\n"), backend("* CAPABILITY IMAP4rev1\r\nc OK\r\n")}),
            at);
        CHECK(t.to_backend() == "c CAPABILITY\r\n");
        CHECK(t.to_client() == cat({kOurGreeting, "a OK Begin TLS negotiation now\r\n",
                                    "* CAPABILITY IMAP4rev1\r\nc OK\r\n"}));
        CHECK_FALSE(t.has("passthrough"));
    }
    auto machine = make_machine(imap());
    Actions out;
    machine->on_event(Event::ClientConnected, out);
    out.clear();
    CHECK(machine->on_bytes(Peer::Client, "a STARTTLS\r\nb LOGIN u p\r\n", out) == 12);
    REQUIRE(out.size() == 2);
    CHECK(std::holds_alternative<StartTls>(out[1]));
}

TEST_CASE("imap starttls: LOGIN and AUTHENTICATE are refused before TLS, others are BAD") {
    MachineSettings s = imap();
    s.max_errors = 100;
    const auto t = check_splits(
        s, accepted({client("a1 LOGIN joe secret\r\na2 AUTHENTICATE PLAIN\r\n"
                            "a3 authenticate PLAIN AGpvZQBzZWNyZXQ=\r\na4 LOGIN {3}\r\n"
                            "a5 SELECT INBOX\r\na6 ID NIL\r\n"),
                     client("a7 NOOP now\r\na8 STARTTLS {3}\r\na9\r\n* NOOP\r\nb+ NOOP\r\n\r\n"),
                     client("z LOGOUT\r\n")}));
    CHECK(t.to_client() ==
          cat({kOurGreeting, "a1 NO [PRIVACYREQUIRED] Use STARTTLS first\r\n",
               "a2 NO [PRIVACYREQUIRED] Use STARTTLS first\r\n",
               "a3 NO [PRIVACYREQUIRED] Use STARTTLS first\r\n",
               "a4 NO [PRIVACYREQUIRED] Use STARTTLS first\r\n",
               "a5 BAD Unknown command or not allowed before STARTTLS\r\n",
               "a6 BAD Unknown command or not allowed before STARTTLS\r\n",
               "a7 BAD Unexpected arguments\r\na8 BAD Unexpected arguments\r\n",
               "a9 BAD Missing command\r\n* BAD Invalid tag\r\n* BAD Invalid tag\r\n",
               "* BAD Invalid tag\r\n* BYE Logging out\r\nz OK LOGOUT completed\r\n"}));
    CHECK(t.actions.back() == "close:client_quit");
    CHECK_FALSE(t.has("connect"));
}

TEST_CASE("imap starttls: literals that postern cannot refuse cleanly close the session") {
    const auto sync = check_splits(imap(), accepted({client("a1 LOGIN {4294967296}\r\n")}));
    CHECK(sync.to_client() == cat({kOurGreeting, replies::kImapBadLiteral}));
    CHECK(sync.actions.back() == "close:protocol_error");
    // LITERAL+ is not offered: its bytes would follow at once and be read as commands.
    const auto non_sync =
        check_splits(imap(), accepted({client("a1 LOGIN {11+}\r\na2 STARTTLS\r\n")}));
    CHECK(non_sync.to_client() == cat({kOurGreeting, replies::kImapProtocolError}));
    CHECK(non_sync.actions.back() == "close:protocol_error");
}

TEST_CASE("imap starttls: the backend greeting is dropped, a trailing {n} is its text") {
    // A status response carries no literal (RFC 9051 §7.1): the next line is a response of its
    // own, filtered.
    const auto t = check_splits(
        imap(), accepted({client("a STARTTLS\r\n"), event(Event::TlsReady), client("b NOOP\r\n"),
                          event(Event::BackendReady),
                          backend("* OK [ALERT] {3}\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\n")}));
    CHECK(t.actions == std::vector<std::string>{
                           cat({"to_client:", kOurGreeting, "a OK Begin TLS negotiation now\r\n"}),
                           "start_tls", "connect", "to_backend:b NOOP\r\n",
                           "to_client:* CAPABILITY IMAP4rev1\r\n"});
}

TEST_CASE("imap starttls: refusing or odd backend greetings after TLS close the session") {
    const test::Script start =
        accepted({client("a STARTTLS\r\n"), event(Event::TlsReady), event(Event::BackendReady)});
    const auto with = [&](std::string_view greeting) {
        test::Script script = start;
        script.push_back(backend(greeting));
        return check_splits(imap(), script);
    };
    const auto bye = with("* BYE Too many connections\r\n");
    CHECK(bye.to_client().ends_with("TLS negotiation now\r\n* BYE Too many connections\r\n"));
    CHECK(bye.actions.back() == "close:backend_unreachable");

    // The client was told it is not authenticated; it cannot follow a PREAUTH backend.
    const auto preauth = with("* PREAUTH [CAPABILITY IMAP4rev1] ready\r\n");
    CHECK(preauth.to_client().ends_with(replies::kImapBackendUnavailable));
    CHECK(preauth.actions.back() == "close:protocol_error");

    const auto smtp = with("220 mx.test ESMTP\r\n");
    CHECK(smtp.to_client().ends_with(replies::kImapBackendUnavailable));
    CHECK(smtp.actions.back() == "close:protocol_error");

    test::Script failed = start;
    failed.back() = event(Event::BackendFailed);
    const auto f = check_splits(imap(), failed);
    CHECK(f.to_client().ends_with(replies::kImapBackendUnavailable));
    CHECK(f.actions.back() == "close:backend_unreachable");
}

TEST_CASE("imap starttls: a second STARTTLS after TLS is BAD and counts as an error") {
    MachineSettings s = imap();
    s.max_errors = 2;
    const auto t = check_splits(
        s, upgraded({client("a STARTTLS\r\n")}, {client("b STARTTLS\r\nc NOOP\r\nd STARTTLS\r\n"),
                                                 backend("c OK\r\n"), client("e starttls\r\n")}));
    CHECK(t.to_backend() == "c NOOP\r\n");
    CHECK(t.to_client().ends_with(
        "a OK Begin TLS negotiation now\r\nb BAD TLS is already active\r\n"
        "d BAD TLS is already active\r\nc OK\r\ne BAD TLS is already active\r\n"
        "* BYE Too many invalid commands\r\n"));
    CHECK(t.actions.back() == "close:too_many_errors");
}

TEST_CASE("imap starttls: limits and bad bytes before TLS") {
    MachineSettings s = imap();
    s.max_line = 16;
    const auto fits = check_splits(s, accepted({client("a1 CAPABILITY\r\n")}));  // 15 bytes
    CHECK(fits.to_client().ends_with("a1 OK CAPABILITY completed\r\n"));
    const auto over = check_splits(s, accepted({client("abcd CAPABILITY\r\n")}));  // 17 bytes
    CHECK(over.to_client() == cat({kOurGreeting, replies::kImapLineTooLong}));
    CHECK(over.actions.back() == "close:line_too_long");

    const auto nul = check_splits(imap(), accepted({client(std::string("a1 NOOP\0\r\n", 10))}));
    CHECK(nul.to_client() == cat({kOurGreeting, replies::kImapNulByte}));
    CHECK(nul.actions.back() == "close:protocol_error");

    const auto hello =
        check_splits(imap(), accepted({client(std::string("\x16\x03\x01\x00\xa5\x01", 6))}));
    CHECK(hello.to_client() == cat({kOurGreeting, replies::kImapJunk}));
    CHECK(hello.actions.back() == "close:protocol_error");

    MachineSettings few = imap();
    few.max_errors = 3;
    const auto errors = check_splits(
        few, accepted({client("a LOGIN x y\r\nb FOO\r\nc NOOP\r\nd FOO\r\ne FOO\r\nf FOO\r\n")}));
    CHECK(errors.to_client().ends_with(
        "c OK NOOP completed\r\nd BAD Unknown command or not allowed before STARTTLS\r\n"
        "e BAD Unknown command or not allowed before STARTTLS\r\n"
        "f BAD Unknown command or not allowed before STARTTLS\r\n"
        "* BYE Too many invalid commands\r\n"));
    CHECK(errors.actions.back() == "close:too_many_errors");
}

TEST_CASE("imap starttls: greeting without a hostname") {
    MachineSettings s = imap();
    s.hostname.clear();
    const auto t = check_splits(s, accepted({}));
    CHECK(t.to_client() == "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] IMAP4 ready\r\n");
}

}  // namespace
}  // namespace postern::protocols
