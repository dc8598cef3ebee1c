// IMAP machine in implicit-TLS mode: whole dialogues against Dovecot's and Courier's real
// greetings and capability lines, each split at every byte offset (dialogue.hpp).

#include "protocols/machine.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace postern::protocols {
namespace {

using test::backend;
using test::cat;
using test::check_splits;
using test::client;
using test::connected;
using test::event;

constexpr std::string_view kDovecotGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    "AUTH=PLAIN] Dovecot (Debian) ready.\r\n";
constexpr std::string_view kDovecotGreetingFiltered =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] "
    "Dovecot (Debian) ready.\r\n";
constexpr std::string_view kCourierGreeting =
    "* OK [CAPABILITY IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
    "THREAD=REFERENCES SORT QUOTA IDLE ACL ACL2=UNION STARTTLS] Courier-IMAP ready. Copyright "
    "1998-2018 Double Precision, Inc.  See COPYING for distribution information.\r\n";
constexpr std::string_view kCourierGreetingFiltered =
    "* OK [CAPABILITY IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
    "THREAD=REFERENCES SORT QUOTA IDLE ACL ACL2=UNION] Courier-IMAP ready. Copyright "
    "1998-2018 Double Precision, Inc.  See COPYING for distribution information.\r\n";

MachineSettings imap() {
    return test::settings_for(Protocol::Imap);
}

TEST_CASE("imap: implicit TLS connects the backend once the client handshake is done") {
    const auto t = check_splits(imap(), {event(Event::TlsReady)});
    CHECK(t.actions == std::vector<std::string>{"connect"});
    CHECK(t.state == "connecting");
    const auto g = check_splits(imap(), {event(Event::TlsReady), event(Event::BackendReady)});
    CHECK(g.state == "greeting");
}

TEST_CASE("imap: Dovecot login dialogue filters every capability place, then Passthrough") {
    const auto t = check_splits(
        imap(),
        connected({
            backend(kDovecotGreeting),
            client("a1 CAPABILITY\r\n"),
            backend("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
                    "STARTTLS LOGINDISABLED\r\na1 OK Pre-login capabilities listed, post-login "
                    "capabilities have more.\r\n"),
            client("a2 LOGIN joe secret\r\n"),
            backend("a2 OK [CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE SORT STARTTLS "
                    "UIDPLUS MOVE] Logged in\r\n* 3 EXISTS\r\n"),
            client("a3 SELECT INBOX\r\n"),
        }));
    CHECK(t.to_client() ==
          std::string(kDovecotGreetingFiltered) +
              "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+\r\n"
              "a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
              "a2 OK [CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE SORT UIDPLUS MOVE] Logged "
              "in\r\n");
    CHECK(t.to_backend() == "a1 CAPABILITY\r\na2 LOGIN joe secret\r\n");
    CHECK(t.actions.back() == "passthrough");
    // What followed the tagged OK was not consumed: the session relays it as-is.
    CHECK(t.raw_to_client == "* 3 EXISTS\r\n");
    CHECK(t.raw_to_backend == "a3 SELECT INBOX\r\n");
    CHECK(t.state == "passthrough");
}

TEST_CASE("imap: Courier greeting loses STARTTLS as its last capability") {
    const auto t = check_splits(imap(), connected({backend(kCourierGreeting)}));
    CHECK(t.to_client() == kCourierGreetingFiltered);
    CHECK(t.state == "auth");
}

TEST_CASE("imap: capability tokens match case-insensitively and only whole") {
    const auto t = check_splits(
        imap(), connected({backend("* ok [capability imap4rev1 starttls STARTTLSX "
                                   "XSTARTTLS logindisabled] hi\r\n"),
                           client("x capability\r\n"),
                           backend("* capability IMAP4rev1 StartTLS\r\nx OK done\r\n")}));
    CHECK(t.to_client() ==
          "* ok [capability imap4rev1 STARTTLSX XSTARTTLS] hi\r\n"
          "* capability IMAP4rev1\r\nx OK done\r\n");
}

TEST_CASE("imap: a failed LOGIN stays in the machine, a second one goes Passthrough") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 LOGIN joe wrong\r\n"),
                           backend("a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
                           client("a2 STARTTLS\r\n")}));
    CHECK_FALSE(t.has("passthrough"));
    CHECK(t.state == "auth");
    CHECK(t.to_backend() == "a1 LOGIN joe wrong\r\n");
    CHECK(t.actions.back().ends_with("\r\na2 BAD TLS is already active\r\n"));

    const auto ok = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 LOGIN joe wrong\r\n"),
                           backend("a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
                           client("a2 login joe right\r\n"), backend("a2 OK Logged in\r\n")}));
    CHECK(ok.actions.back() == "passthrough");
}

TEST_CASE("imap: AUTHENTICATE continuations reach the backend and its OK goes Passthrough") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 AUTHENTICATE PLAIN\r\n"),
                           backend("+ \r\n"), client("AGpvZQBzZWNyZXQ=\r\n"),
                           backend("a1 OK [CAPABILITY IMAP4rev1 STARTTLS IDLE] Logged in\r\n")}));
    CHECK(t.to_backend() == "a1 AUTHENTICATE PLAIN\r\nAGpvZQBzZWNyZXQ=\r\n");
    CHECK(t.to_client() == std::string(kDovecotGreetingFiltered) +
                               "+ \r\na1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
    CHECK(t.actions.back() == "passthrough");
}

TEST_CASE("imap: a SASL line that reads like STARTTLS is forwarded, it is not a command") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 AUTHENTICATE LOGIN\r\n"),
                           backend("+ VXNlcm5hbWU6\r\n"), client("a2 STARTTLS\r\n")}));
    CHECK(t.to_backend() == "a1 AUTHENTICATE LOGIN\r\na2 STARTTLS\r\n");
}

TEST_CASE("imap: a command pipelined after SASL-IR waits for the outcome, then is refused") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting),
                           client("a1 AUTHENTICATE PLAIN AGpvZQB3cm9uZw==\r\na2 STARTTLS\r\n"),
                           backend("a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")}));
    CHECK(t.to_backend() == "a1 AUTHENTICATE PLAIN AGpvZQB3cm9uZw==\r\n");
    CHECK(t.actions.back() ==
          "to_client:a1 NO [AUTHENTICATIONFAILED] Authentication "
          "failed.\r\na2 BAD TLS is already active\r\n");
    CHECK(t.client_pending.empty());
}

TEST_CASE("imap: STARTTLS in any case is answered locally and never forwarded") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 StartTLS\r\nA2 NOOP\r\n")}));
    CHECK(t.to_backend() == "A2 NOOP\r\n");
    CHECK(t.to_client() ==
          std::string(kDovecotGreetingFiltered) + "a1 BAD TLS is already active\r\n");
    CHECK(t.state == "auth");
}

TEST_CASE("imap: a backend literal holding capability-looking text is relayed untouched") {
    const std::string literal = "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK\r\n";
    const std::string response =
        "* ID (\"name\" {" + std::to_string(literal.size()) + "}\r\n" + literal + ")\r\n";
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 ID (\"name\" \"mutt\")\r\n"),
                           backend(response + "* CAPABILITY IMAP4rev1 STARTTLS\r\n"
                                              "a1 OK ID completed.\r\n")}));
    CHECK(t.to_client() == std::string(kDovecotGreetingFiltered) + response +
                               "* CAPABILITY IMAP4rev1\r\na1 OK ID completed.\r\n");
}

TEST_CASE("imap: a STARTTLS line inside a client literal is data, not a command") {
    SUBCASE("non-synchronizing literal (LITERAL+)") {
        const auto t = check_splits(
            imap(), connected({backend(kDovecotGreeting),
                               client("a1 LOGIN {13+}\r\na9 STARTTLS\r\n secret\r\n")}));
        CHECK(t.to_backend() == "a1 LOGIN {13+}\r\na9 STARTTLS\r\n secret\r\n");
    }
    SUBCASE("synchronizing literal waits for the continuation") {
        const auto t = check_splits(
            imap(),
            connected({backend(kDovecotGreeting), client("a1 LOGIN {13}\r\n"),
                       client("a9 STARTTLS\r\n {6}\r\n"), backend("+ OK\r\n"), backend("+ OK\r\n"),
                       client("secret\r\n"), backend("a1 OK Logged in\r\n")}));
        CHECK(t.to_backend() == "a1 LOGIN {13}\r\na9 STARTTLS\r\n {6}\r\nsecret\r\n");
        CHECK(t.actions.back() == "passthrough");
    }
    SUBCASE("a refused synchronizing literal is not sent: the next line is a command") {
        const auto t = check_splits(
            imap(), connected({backend(kDovecotGreeting), client("a1 LOGIN {5000}\r\n"),
                               client("a2 STARTTLS\r\n"),
                               backend("a1 NO [TOOBIG] Literal too large\r\n")}));
        CHECK(t.to_backend() == "a1 LOGIN {5000}\r\n");
        CHECK(t.actions.back() ==
              "to_client:a1 NO [TOOBIG] Literal too large\r\n"
              "a2 BAD TLS is already active\r\n");
    }
}

TEST_CASE("imap: STARTTLS waits while a backend response is partly relayed") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 ID NIL\r\n"),
                           backend("* ID (\"name\" {5}\r\nDove"), client("a2 STARTTLS\r\n"),
                           backend("t)\r\na1 OK ID completed.\r\n")}));
    CHECK(t.to_client() == std::string(kDovecotGreetingFiltered) +
                               "* ID (\"name\" {5}\r\nDovet)\r\na2 BAD TLS is already active\r\n"
                               "a1 OK ID completed.\r\n");
}

TEST_CASE("imap: held-back client bytes are looked at right after the greeting line") {
    // The client's command is forwarded as soon as the greeting line is relayed, however the
    // backend's bytes are cut.
    const auto t = check_splits(
        imap(), connected({client("a1 ID NIL\r\n"),
                           backend("* OK [ALERT] {3}\r\nabc ready\r\n* 1 RECENT\r\n")}));
    CHECK(t.actions == std::vector<std::string>{"connect", "to_client:* OK [ALERT] {3}\r\n",
                                                "to_backend:a1 ID NIL\r\n",
                                                "to_client:abc ready\r\n* 1 RECENT\r\n"});
}

TEST_CASE("imap: a status or continuation line ending in {n} announces no literal") {
    // resp-text never holds a literal (RFC 9051 §7.1, §7.5): the next line is a response, and
    // its capabilities are filtered, as the client's own parser reads it.
    const std::string caps = "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n";
    const std::string n = "{" + std::to_string(caps.size()) + "}";
    for (const std::string& status :
         {"a1 NO Try later " + n, "a1 BAD " + n, "* OK [ALERT] text " + n, "* NO " + n,
          "* BAD [PARSE] " + n, "* BYE going " + n, "* CAPABILITY IMAP4rev1 " + n}) {
        CAPTURE(status);
        const auto t = check_splits(
            imap(), connected({backend(kDovecotGreeting), client("a1 LOGIN joe wrong\r\n"),
                               backend(cat({status, "\r\n", caps})), client("a2 STARTTLS\r\n")}));
        CHECK(t.to_client().ends_with(cat({status, "\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n",
                                           "a2 BAD TLS is already active\r\n"})));
    }
    const auto sasl = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 AUTHENTICATE PLAIN\r\n"),
                           backend("+ " + n + "\r\n" + caps), client("AGpvZQBzZWNyZXQ=\r\n"),
                           backend("a1 OK [CAPABILITY IMAP4rev1 STARTTLS] Logged in\r\n")}));
    CHECK(sasl.to_client().ends_with(cat({"+ ", n, "\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n",
                                          "a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"})));
    CHECK(sasl.actions.back() == "passthrough");
}

TEST_CASE("imap: data responses keep their literals, also after a literal") {
    const std::string body = "* CAPABILITY IMAP4rev1 STARTTLS\r\n";
    const std::string size = std::to_string(body.size());
    const std::string fetch = "* 1 FETCH (BODY[1] {" + size + "}\r\n" + body + " BODY[2] {" + size +
                              "}\r\n" + body + ")\r\n";
    const std::string list = "* LIST () \"/\" {" + size + "}\r\n" + body + "\r\n";
    const auto t = check_splits(imap(), connected({backend(kDovecotGreeting), client("a1 NOOP\r\n"),
                                                   backend(fetch + list + "a1 OK done\r\n")}));
    CHECK(t.to_client() == std::string(kDovecotGreetingFiltered) + fetch + list + "a1 OK done\r\n");
}

TEST_CASE("imap: oversized or overflowing literals close the session") {
    const auto c = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 LOGIN {4294967296}\r\n")}));
    CHECK(c.actions.back() == "close:protocol_error");
    CHECK(c.to_client().ends_with("* BAD Literal too large\r\n"));
    CHECK(c.to_backend().empty());

    const auto max = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 LOGIN {4294967295+}\r\nab")}));
    CHECK(max.to_backend() == "a1 LOGIN {4294967295+}\r\nab");

    const auto b =
        check_splits(imap(), connected({backend(kDovecotGreeting), client("a1 ID NIL\r\n"),
                                        backend("* ID (\"x\" {99999999999999999999999}\r\n")}));
    CHECK(b.actions.back() == "close:protocol_error");

    // "{...}" without digits is text, as the backend's parser sees it too.
    const auto text = check_splits(
        imap(), connected({backend("* OK [ALERT] see {docs}\r\n"), client("a1 NOOP {x}\r\n")}));
    CHECK(text.to_backend() == "a1 NOOP {x}\r\n");
}

TEST_CASE("imap: PREAUTH greeting is relayed filtered and goes Passthrough") {
    const auto t = check_splits(
        imap(), connected({backend("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n* 1 "
                                   "EXISTS\r\n"),
                           client("a1 SELECT INBOX\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{
              "connect", "to_client:* PREAUTH [CAPABILITY IMAP4rev1] ready\r\n", "passthrough"});
    CHECK(t.raw_to_client == "* 1 EXISTS\r\n");
    CHECK(t.raw_to_backend == "a1 SELECT INBOX\r\n");
}

TEST_CASE("imap: BYE greeting is relayed and the session closes as backend unreachable") {
    const auto t =
        check_splits(imap(), connected({client("a1 CAPABILITY\r\n"),
                                        backend("* BYE Too many connections from your IP\r\n")}));
    CHECK(t.actions == std::vector<std::string>{
                           "connect", "to_client:* BYE Too many connections from your IP\r\n",
                           "close:backend_unreachable"});
}

TEST_CASE("imap: a non-IMAP greeting closes with a protocol error") {
    const auto t =
        check_splits(imap(), connected({backend("220 mx.test ESMTP Postfix (Debian/GNU)\r\n")}));
    CHECK(t.actions.back() == "close:protocol_error");
    CHECK(t.to_client().starts_with("* BYE [UNAVAILABLE]"));
}

TEST_CASE("imap: backend failure sends BYE UNAVAILABLE and closes") {
    const auto t = check_splits(
        imap(), {event(Event::TlsReady), event(Event::BackendFailed), client("a1 CAPABILITY\r\n")});
    CHECK(t.actions ==
          std::vector<std::string>{
              "connect",
              "to_client:* BYE [UNAVAILABLE] Backend server unavailable, try again later\r\n",
              "close:backend_unreachable"});
    CHECK(t.state == "closed");
}

TEST_CASE("imap: client bytes wait for the greeting, then go through unchanged") {
    const auto before = check_splits(imap(), connected({client("a1 CAPABILITY\r\n")}));
    CHECK(before.actions == std::vector<std::string>{"connect"});
    CHECK(before.client_pending == "a1 CAPABILITY\r\n");

    const auto after =
        check_splits(imap(), connected({client("a1 CAPABILITY\r\n"), backend(kDovecotGreeting)}));
    CHECK(after.to_backend() == "a1 CAPABILITY\r\n");
    CHECK(after.client_pending.empty());
}

TEST_CASE("imap: bare-LF lines are forwarded exactly as sent") {
    const auto t = check_splits(
        imap(), connected({backend(kDovecotGreeting), client("a1 NOOP\na2 CAPABILITY\r\n")}));
    CHECK(t.to_backend() == "a1 NOOP\na2 CAPABILITY\r\n");
}

TEST_CASE("imap: lines over the limits close the session") {
    MachineSettings s = imap();
    s.max_line = 32;
    s.max_backend_line = 200;
    const std::string fits = "a1 LOGIN joe " + std::string(32 - 15, 'p') + "\r\n";
    REQUIRE(fits.size() == 32);
    const auto exact = check_splits(s, connected({backend(kDovecotGreeting), client(fits)}));
    CHECK(exact.to_backend() == fits);

    const std::string too_long = "a1 LOGIN joe " + std::string(32 - 14, 'p') + "\r\n";
    const auto over = check_splits(s, connected({backend(kDovecotGreeting), client(too_long)}));
    CHECK(over.actions.back() == "close:line_too_long");
    CHECK(over.to_client().ends_with("* BAD Line too long\r\n"));
    CHECK(over.to_backend().empty());

    const auto backend_over =
        check_splits(s, connected({backend("* OK " + std::string(300, 'x'))}));
    CHECK(backend_over.actions.back() == "close:protocol_error");
}

TEST_CASE("imap: a NUL byte in a command closes the session") {
    const auto t = check_splits(imap(), connected({backend(kDovecotGreeting),
                                                   client(std::string("a1 STARTTLS\0x\r\n", 15))}));
    CHECK(t.actions.back() == "close:protocol_error");
    CHECK(t.to_backend().empty());
}

TEST_CASE("imap: LOGOUT is relayed and its OK closes as client quit") {
    const auto t = check_splits(
        imap(), connected({backend(kCourierGreeting), client("a1 LOGOUT\r\n"),
                           backend("* BYE Courier-IMAP server shutting down\r\na1 OK LOGOUT "
                                   "completed\r\n")}));
    CHECK(t.to_backend() == "a1 LOGOUT\r\n");
    CHECK(t.actions.back() == "close:client_quit");
}

}  // namespace
}  // namespace postern::protocols
