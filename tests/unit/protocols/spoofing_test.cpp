// No spoofing, SMTP and POP3: a client's XCLIENT, XFORWARD and XOIP are answered by postern in
// every phase (before TLS, in plaintext towards the backend, in the dialogue, after AUTH,
// between transactions) and never reach the backend; the backend's offers of them (EHLO, CAPA,
// Dovecot's "[XCLIENT]" greeting code) never reach the client. Every dialogue is split at every
// byte offset (dialogue.hpp). IMAP's ID is imap_id_test.cpp's.

#include "protocols/machine.hpp"
#include "protocols/replies.hpp"
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
using test::connected;
using test::event;

constexpr std::string_view kSmtpRefused = "550 5.7.0 Error: insufficient authorization\r\n";
constexpr std::string_view kPop3Refused = "-ERR Command not permitted\r\n";

constexpr std::string_view kPostfixGreeting = "220 backend.test ESMTP Postfix\r\n";
// Postfix offers XCLIENT and XFORWARD to the hosts in smtpd_authorized_xclient_hosts and
// smtpd_authorized_xforward_hosts: postern's address, when it forwards identities.
constexpr std::string_view kPostfixEhlo =
    "250-backend.test\r\n250-PIPELINING\r\n250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT "
    "LOGIN DESTADDR DESTPORT\r\n250-SIZE 10240000\r\n250-xforward NAME ADDR PROTO HELO SOURCE "
    "PORT IDENT\r\n250-AUTH PLAIN\r\n250 XCLIENT\r\n";
constexpr std::string_view kPostfixEhloFiltered =
    "250-backend.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 AUTH PLAIN\r\n";

MachineSettings smtp() {
    return test::settings_for(Protocol::Smtp);
}

MachineSettings smtp_starttls(bool require_tls) {
    MachineSettings s = test::starttls_settings_for(Protocol::Smtp, require_tls);
    s.smtp_extensions = std::make_shared<const std::vector<std::string>>(
        std::vector<std::string>{"PIPELINING", "XCLIENT NAME ADDR PROTO HELO", "SIZE 100",
                                 "XFORWARD NAME ADDR", "8BITMIME", "xclient ADDR"});
    return s;
}

TEST_CASE("spoofing: smtp EHLO replies lose XCLIENT and XFORWARD, wherever they stand") {
    const auto t = check_splits(smtp(), connected({backend(kPostfixGreeting), client("EHLO c\r\n"),
                                                   backend(kPostfixEhlo)}));
    CHECK(t.to_client() == cat({kPostfixGreeting, kPostfixEhloFiltered}));
    CHECK(t.state == "command");
}

TEST_CASE("spoofing: smtp XCLIENT and XFORWARD are refused in every phase of the dialogue") {
    MachineSettings s = smtp();
    s.max_errors = 100;
    const auto t = check_splits(
        s, connected({backend(kPostfixGreeting),
                      // before EHLO
                      client("XCLIENT ADDR=203.0.113.9 NAME=spoof.example\r\n"),
                      client("EHLO c\r\n"), backend(kPostfixEhlo),
                      // in a pipelined group: our reply waits for the MAIL reply before it
                      client("MAIL FROM:<a@b>\r\nxforward ADDR=203.0.113.9\r\nRCPT TO:<c@d>\r\n"),
                      backend("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
                      // in a transaction's content it is content, not a command
                      client("DATA\r\n"), backend("354 End data\r\n"),
                      client("XCLIENT ADDR=1.2.3.4\r\n.\r\n"), backend("250 2.0.0 queued\r\n"),
                      // between transactions, and after AUTH
                      client("XClient LOGIN=admin\r\n"), client("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"),
                      backend("235 2.7.0 Authentication successful\r\n"),
                      client("XCLIENT ADDR=198.51.100.1\r\nXFORWARD\r\nNOOP\r\n"),
                      backend("250 2.0.0 Ok\r\n")}));
    CHECK(t.to_backend() ==
          "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nXCLIENT ADDR=1.2.3.4\r\n.\r\n"
          "AUTH PLAIN AGpvZQBzZWNyZXQ=\r\nNOOP\r\n");
    CHECK(t.to_client() ==
          cat({kPostfixGreeting, kSmtpRefused, kPostfixEhloFiltered, "250 2.1.0 Ok\r\n",
               kSmtpRefused, "250 2.1.5 Ok\r\n", "354 End data\r\n", "250 2.0.0 queued\r\n",
               kSmtpRefused, "235 2.7.0 Authentication successful\r\n", kSmtpRefused, kSmtpRefused,
               "250 2.0.0 Ok\r\n"}));
    CHECK(t.state == "command");
}

TEST_CASE("spoofing: smtp XCLIENT counts as a bad command") {
    MachineSettings s = smtp();
    s.max_errors = 2;
    const auto t =
        check_splits(s, connected({backend(kPostfixGreeting), client("XCLIENT ADDR=1.2.3.4\r\n"),
                                   client("XCLIENT ADDR=1.2.3.4\r\nNOOP\r\n")}));
    CHECK(t.to_backend().empty());
    CHECK(t.to_client() == cat({kPostfixGreeting, kSmtpRefused, kSmtpRefused,
                                "421 4.7.0 mx.test Error: too many "
                                "errors\r\n"}));
    CHECK(t.actions.back() == "close:too_many_errors");
}

TEST_CASE("spoofing: smtp before TLS refuses XCLIENT/XFORWARD and never advertises them") {
    constexpr std::string_view kOurEhlo =
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250 STARTTLS\r\n";
    for (const bool require_tls : {true, false}) {
        CAPTURE(require_tls);
        const auto t =
            check_splits(smtp_starttls(require_tls),
                         accepted({client("EHLO c\r\n"), client("XCLIENT ADDR=203.0.113.9\r\n"),
                                   client("xforward ADDR=203.0.113.9\r\n"), client("QUIT\r\n")}));
        // With require_tls = false any other verb would have gone to the backend in plaintext.
        CHECK(t.actions ==
              std::vector<std::string>{cat({"to_client:220 mx.test ESMTP ready\r\n", kOurEhlo,
                                            kSmtpRefused, kSmtpRefused, "221 2.0.0 Bye\r\n"}),
                                       "close:client_quit"});
    }
}

TEST_CASE("spoofing: smtp on the plaintext path refuses XCLIENT before and after the backend") {
    const auto t = check_splits(
        smtp_starttls(false),
        accepted({client("EHLO c\r\nXCLIENT ADDR=203.0.113.9\r\nMAIL FROM:<a@b>\r\n"),
                  event(Event::BackendReady), backend(kPostfixGreeting), backend(kPostfixEhlo),
                  backend("250 2.1.0 Ok\r\n"), client("XCLIENT ADDR=203.0.113.9\r\n")}));
    CHECK(t.to_backend() == "EHLO c\r\nMAIL FROM:<a@b>\r\n");
    CHECK(t.to_client().find("XCLIENT") == std::string::npos);
    CHECK(t.to_client().ends_with(cat({kSmtpRefused, "250 2.1.0 Ok\r\n", kSmtpRefused})));
}

// POP3 -------------------------------------------------------------------------------------------

constexpr std::string_view kDovecotTrustedGreeting = "+OK [XCLIENT] Dovecot ready.\r\n";

MachineSettings pop3() {
    return test::settings_for(Protocol::Pop3);
}

TEST_CASE("spoofing: pop3 greeting loses [XCLIENT], CAPA loses XCLIENT and XFORWARD") {
    const auto t = check_splits(
        pop3(), connected({backend(kDovecotTrustedGreeting), client("CAPA\r\n"),
                           backend("+OK\r\nCAPA\r\nTOP\r\nXCLIENT\r\nSTLS\r\nxforward NAME\r\n"
                                   "USER\r\n.\r\n")}));
    CHECK(t.to_client() == "+OK Dovecot ready.\r\n+OK\r\nCAPA\r\nTOP\r\nUSER\r\n.\r\n");
}

TEST_CASE("spoofing: pop3 XCLIENT, XOIP and XFORWARD are refused and count as errors") {
    MachineSettings s = pop3();
    s.max_errors = 3;
    const auto t = check_splits(
        s, connected({backend(kDovecotTrustedGreeting), client("XCLIENT ADDR=203.0.113.9\r\n"),
                      client("USER joe\r\nxoip 203.0.113.9\r\n"), backend("+OK\r\n"),
                      client("XForward ADDR=1.2.3.4\r\nXCLIENT\r\n")}));
    CHECK(t.to_backend() == "USER joe\r\n");
    CHECK(t.to_client() == cat({"+OK Dovecot ready.\r\n", kPop3Refused, "+OK\r\n", kPop3Refused,
                                kPop3Refused, kPop3Refused, "-ERR Too many invalid commands\r\n"}));
    CHECK(t.actions.back() == "close:too_many_errors");
}

TEST_CASE("spoofing: pop3 before TLS refuses XCLIENT, also when plaintext may go on") {
    for (const bool require_tls : {true, false}) {
        CAPTURE(require_tls);
        const auto t = check_splits(test::starttls_settings_for(Protocol::Pop3, require_tls),
                                    accepted({client("XCLIENT ADDR=203.0.113.9\r\n"),
                                              client("XOIP 203.0.113.9\r\nQUIT\r\n")}));
        CHECK(t.actions ==
              std::vector<std::string>{cat({"to_client:+OK mx.test POP3 ready\r\n", kPop3Refused,
                                            kPop3Refused, "+OK Logging out\r\n"}),
                                       "close:client_quit"});
    }
}

TEST_CASE("spoofing: pop3 on the plaintext path refuses XCLIENT after the backend greeted") {
    const auto t = check_splits(
        test::starttls_settings_for(Protocol::Pop3, false),
        accepted({client("NOOP\r\nXCLIENT ADDR=203.0.113.9\r\n"), event(Event::BackendReady),
                  backend(kDovecotTrustedGreeting), backend("+OK\r\n")}));
    CHECK(t.to_backend() == "NOOP\r\n");
    CHECK(t.to_client() == cat({"+OK mx.test POP3 ready\r\n", "+OK\r\n", kPop3Refused}));
}

}  // namespace
}  // namespace postern::protocols
