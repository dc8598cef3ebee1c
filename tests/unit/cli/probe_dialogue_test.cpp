#include "cli/probe/dialogue.hpp"
#include "protocols/smtp_reply.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

using postern::cli::probe::Dialogue;
using postern::cli::probe::imap_response_capabilities;
using postern::cli::probe::Protocol;
using postern::cli::probe::protocol_named;
using postern::cli::probe::protocol_of_greeting;
using postern::cli::probe::Step;
using postern::cli::probe::Then;
using postern::protocols::parse_smtp_line;

namespace {

constexpr std::string_view kTls = "<TLS>";  // in a script: the handshake happens here

struct Run {
    std::vector<std::string> sent;  // commands, with "<TLS>" where the handshake happened
    Then end = Then::Read;          // Read: the script ran out while the dialogue wanted more
    std::string error;
};

// Plays `server` lines to the dialogue like proxy/probe.cpp does. A kTls entry is where the
// driver expects Then::StartTls; `eof` closes the connection after the last line.
Run play(Dialogue& d, const std::vector<std::string_view>& server, bool eof = false) {
    Run run;
    Step step = d.start();
    std::size_t next = 0;
    while (true) {
        if (!step.send.empty()) {
            run.sent.push_back(step.send);
        }
        if (step.then == Then::StartTls) {
            run.sent.emplace_back(kTls);
            REQUIRE(next < server.size());
            REQUIRE(server[next] == kTls);
            ++next;
            step = d.on_tls_ready();
            continue;
        }
        if (step.then != Then::Read) {
            run.end = step.then;
            run.error = step.error;
            return run;
        }
        if (next == server.size()) {
            if (eof) {
                eof = false;
                step = d.on_eof();
                continue;
            }
            return run;
        }
        REQUIRE(server[next] != kTls);
        step = d.on_line(server[next++]);
    }
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("probe_dialogue: protocol names") {
    CHECK(protocol_named("smtp") == Protocol::Smtp);
    CHECK(protocol_named("IMAP") == Protocol::Imap);
    CHECK(protocol_named("pop3") == Protocol::Pop3);
    CHECK_FALSE(protocol_named("ftp").has_value());
    CHECK_FALSE(protocol_named("").has_value());
}

TEST_CASE("probe_dialogue: an implicit-TLS greeting tells the protocol") {
    struct Row {
        std::string_view line;
        std::optional<Protocol> want;
    };
    const Row rows[] = {
        {"* OK [CAPABILITY IMAP4rev1] Dovecot ready.", Protocol::Imap},
        {"* ok hi", Protocol::Imap},
        {"* PREAUTH welcome", Protocol::Imap},
        {"* BYE backend unavailable", Protocol::Imap},
        {"+OK Dovecot ready.", Protocol::Pop3},
        {"-ERR backend unavailable", Protocol::Pop3},
        {"220 mx.example.com ESMTP", Protocol::Smtp},
        {"220-mx.example.com ESMTP", Protocol::Smtp},
        {"421 4.3.0 unavailable", Protocol::Smtp},
        {"220", Protocol::Smtp},
        {"* CAPABILITY IMAP4rev1", std::nullopt},
        {"HTTP/1.1 400 Bad Request", std::nullopt},
        {"22 short", std::nullopt},
        {"2200 long", std::nullopt},
        {"+OKAY", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        CHECK(protocol_of_greeting(row.line) == row.want);
    }
}

TEST_CASE("probe_dialogue: SMTP reply lines") {
    auto l = parse_smtp_line("250-SIZE 10240000");
    REQUIRE(l);
    CHECK(l->code == 250);
    CHECK_FALSE(l->last);
    CHECK(l->text == "SIZE 10240000");
    l = parse_smtp_line("250 STARTTLS");
    REQUIRE(l);
    CHECK(l->last);
    CHECK(l->text == "STARTTLS");
    l = parse_smtp_line("221");
    REQUIRE(l);
    CHECK(l->code == 221);
    CHECK(l->last);
    CHECK(l->text.empty());
    CHECK_FALSE(parse_smtp_line("25").has_value());
    CHECK_FALSE(parse_smtp_line("2x0 ok").has_value());
    CHECK_FALSE(parse_smtp_line("250+ok").has_value());
    CHECK_FALSE(parse_smtp_line("* OK").has_value());
}

TEST_CASE("probe_dialogue: IMAP [CAPABILITY] response codes") {
    CHECK(imap_response_capabilities("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi") ==
          Lines{"IMAP4rev1", "STARTTLS", "AUTH=PLAIN"});
    CHECK(imap_response_capabilities("a2 OK [capability IMAP4rev1] done") == Lines{"IMAP4rev1"});
    CHECK_FALSE(imap_response_capabilities("* OK Dovecot ready.").has_value());
    CHECK_FALSE(imap_response_capabilities("* OK [ALERT] hi").has_value());
    CHECK_FALSE(imap_response_capabilities("* OK [CAPABILITY IMAP4rev1 no end").has_value());
}

TEST_CASE("probe_dialogue: SMTP STARTTLS, EHLO again after TLS, QUIT") {
    Dialogue d{Protocol::Smtp, "probe.example"};
    const auto run =
        play(d, {"220-mx.example.com ESMTP", "220 second line", "250-mx.example.com",
                 "250-PIPELINING", "250-starttls", "250 SIZE 100", "220 2.0.0 Ready to start TLS",
                 kTls, "250-mx.example.com", "250-PIPELINING", "250-SIZE 100",
                 "250 AUTH PLAIN LOGIN", "221 2.0.0 Bye"});
    CHECK(run.end == Then::Close);
    CHECK(run.sent == Lines{"EHLO probe.example\r\n", "STARTTLS\r\n", "<TLS>",
                            "EHLO probe.example\r\n", "QUIT\r\n"});
    CHECK(d.protocol() == Protocol::Smtp);
    CHECK(d.capabilities_read());
    CHECK(d.capabilities() == Lines{"PIPELINING", "SIZE 100", "AUTH PLAIN LOGIN"});
}

TEST_CASE("probe_dialogue: SMTP servers that cannot do STARTTLS get a clear error") {
    SUBCASE("not advertised") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"220 mx ESMTP", "250-mx", "250-PIPELINING", "250 SIZE 100"});
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "the server does not offer STARTTLS (EHLO lists: PIPELINING, SIZE)");
        CHECK(run.sent == Lines{"EHLO h\r\n"});
    }
    SUBCASE("no extensions at all") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"220 mx ESMTP", "250 mx"});
        CHECK(run.error == "the server does not offer STARTTLS (EHLO lists: nothing)");
    }
    SUBCASE("refused") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run =
            play(d, {"220 mx ESMTP", "250-mx", "250 STARTTLS", "454 4.7.0 TLS not available"});
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "the server refused STARTTLS: 454 4.7.0 TLS not available");
    }
    SUBCASE("greeting is an error") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"554-go away", "554 really"});
        CHECK(run.error == "the server's greeting is not 220: 554 really");
        CHECK(run.sent.empty());
    }
    SUBCASE("EHLO refused") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"220 mx", "501 5.5.4 bad name"});
        CHECK(run.error == "the server refused EHLO: 501 5.5.4 bad name");
    }
    SUBCASE("code changes inside a reply") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"220-mx", "250 mx"});
        CHECK(run.error == "SMTP reply changes its code between lines: 250 mx");
    }
    SUBCASE("not SMTP") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"* OK IMAP ready"});
        CHECK(run.error == "malformed SMTP reply: * OK IMAP ready");
    }
    SUBCASE("connection closed after EHLO") {
        Dialogue d{Protocol::Smtp, "h"};
        const auto run = play(d, {"220 mx"}, true);
        CHECK(run.error == "the server closed the connection after EHLO");
    }
}

TEST_CASE("probe_dialogue: an endless SMTP reply is cut off") {
    Dialogue d{Protocol::Smtp, "h"};
    std::vector<std::string_view> lines(Dialogue::kMaxReplyLines + 1, "220-more");
    const auto run = play(d, lines);
    CHECK(run.end == Then::Fail);
    CHECK(run.error == "SMTP reply has more than 1000 lines");
}

TEST_CASE("probe_dialogue: IMAP STARTTLS, CAPABILITY after TLS, LOGOUT") {
    Dialogue d{Protocol::Imap, "h"};
    const auto run =
        play(d, {"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready", "* NOTE ignored",
                 "a1 OK Begin TLS negotiation now.", kTls, "* CAPABILITY IMAP4rev1 SASL-IR",
                 "* CAPABILITY AUTH=PLAIN", "a2 OK Capability completed.", "* BYE Logging out",
                 "a3 OK Logout completed."});
    CHECK(run.end == Then::Close);
    CHECK(run.sent == Lines{"a1 STARTTLS\r\n", "<TLS>", "a2 CAPABILITY\r\n", "a3 LOGOUT\r\n"});
    CHECK(d.capabilities() == Lines{"IMAP4rev1", "SASL-IR", "AUTH=PLAIN"});
}

TEST_CASE("probe_dialogue: IMAP greetings and STARTTLS replies that stop the probe") {
    struct Row {
        std::vector<std::string_view> server;
        std::string_view error;
    };
    const Row rows[] = {
        {{"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready"},
         "the server does not offer STARTTLS: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready"},
        {{"* PREAUTH welcome"},
         "the server greets with PREAUTH, so STARTTLS is not allowed: * PREAUTH welcome"},
        {{"* BYE too many connections"},
         "the server refused the connection: * BYE too many connections"},
        {{"+OK POP3 ready"}, "not an IMAP greeting: +OK POP3 ready"},
        {{"* OK ready", "a1 NO not now"}, "the server refused STARTTLS: a1 NO not now"},
        {{"* OK ready", "a1 BAD unknown command"},
         "the server refused STARTTLS: a1 BAD unknown command"},
        {{"* OK ready", "x9 OK what"}, "unexpected reply to STARTTLS: x9 OK what"},
    };
    for (const auto& row : rows) {
        CAPTURE(row.error);
        Dialogue d{Protocol::Imap, "h"};
        const auto run = play(d, row.server);
        CHECK(run.end == Then::Fail);
        CHECK(run.error == row.error);
        CHECK(std::find(run.sent.begin(), run.sent.end(), "<TLS>") == run.sent.end());
    }
}

TEST_CASE("probe_dialogue: implicit TLS learns the protocol from the greeting") {
    SUBCASE("IMAP, capabilities from the CAPABILITY command") {
        Dialogue d{std::nullopt, "h"};
        CHECK(d.start().then == Then::StartTls);
        const auto run = play(d, {kTls, "* OK [CAPABILITY IMAP4rev1 ID] postern ready",
                                  "* CAPABILITY IMAP4rev1 ID IDLE", "a2 OK done", "a3 OK bye"});
        CHECK(run.end == Then::Close);
        CHECK(d.protocol() == Protocol::Imap);
        CHECK(run.sent == Lines{"<TLS>", "a2 CAPABILITY\r\n", "a3 LOGOUT\r\n"});
        CHECK(d.capabilities() == Lines{"IMAP4rev1", "ID", "IDLE"});
    }
    SUBCASE("IMAP, CAPABILITY refused: the greeting's list is used") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "* OK [CAPABILITY IMAP4rev1 ID] hi", "a2 BAD no"}, true);
        CHECK(run.end == Then::Close);
        CHECK(d.capabilities() == Lines{"IMAP4rev1", "ID"});
    }
    SUBCASE("IMAP, capabilities only in the tagged reply's response code") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "* OK hi", "a2 OK [CAPABILITY IMAP4rev1 X] done"}, true);
        CHECK(run.end == Then::Close);
        CHECK(d.capabilities() == Lines{"IMAP4rev1", "X"});
    }
    SUBCASE("IMAP, no capabilities anywhere") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "* OK hi", "a2 NO no"});
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "the server refused CAPABILITY: a2 NO no");
        CHECK_FALSE(d.capabilities_read());
    }
    SUBCASE("IMAP BYE greeting (postern with its backend down)") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "* BYE [UNAVAILABLE] backend down"});
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "the server refused the connection: * BYE [UNAVAILABLE] backend down");
        CHECK(d.protocol() == Protocol::Imap);
    }
    SUBCASE("POP3") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "+OK ready", "+OK list follows", "USER", "SASL PLAIN",
                                  "..odd", ".", "+OK bye"});
        CHECK(run.end == Then::Close);
        CHECK(d.protocol() == Protocol::Pop3);
        CHECK(run.sent == Lines{"<TLS>", "CAPA\r\n", "QUIT\r\n"});
        CHECK(d.capabilities() == Lines{"USER", "SASL PLAIN", ".odd"});
    }
    SUBCASE("SMTP with a multi-line greeting, closing without a QUIT reply") {
        Dialogue d{std::nullopt, "probe.example"};
        const auto run =
            play(d, {kTls, "220-mx ESMTP", "220 hi", "250-mx", "250 PIPELINING"}, true);
        CHECK(run.end == Then::Close);
        CHECK(run.sent == Lines{"<TLS>", "EHLO probe.example\r\n", "QUIT\r\n"});
        CHECK(d.capabilities() == Lines{"PIPELINING"});
    }
    SUBCASE("SMTP 421 greeting") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "421 4.3.0 backend unavailable"});
        CHECK(run.error ==
              "the server's greeting after the TLS handshake is not 220: 421 4.3.0 backend "
              "unavailable");
    }
    SUBCASE("not a mail server") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls, "HTTP/1.1 400 Bad Request"});
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "not an SMTP, IMAP or POP3 greeting: HTTP/1.1 400 Bad Request");
        CHECK_FALSE(d.protocol().has_value());
    }
    SUBCASE("closed before the greeting") {
        Dialogue d{std::nullopt, "h"};
        const auto run = play(d, {kTls}, true);
        CHECK(run.error ==
              "the server closed the connection after the TLS handshake, before a greeting");
    }
}

TEST_CASE("probe_dialogue: POP3 STLS, CAPA after TLS, QUIT") {
    Dialogue d{Protocol::Pop3, "h"};
    const auto run = play(d, {"+OK Dovecot ready.", "+OK Begin TLS negotiation now.", kTls, "+OK",
                              "TOP", "UIDL", ".", "+OK Logging out."});
    CHECK(run.end == Then::Close);
    CHECK(run.sent == Lines{"STLS\r\n", "<TLS>", "CAPA\r\n", "QUIT\r\n"});
    CHECK(d.capabilities() == Lines{"TOP", "UIDL"});
    CHECK(d.capabilities_note().empty());
}

TEST_CASE("probe_dialogue: POP3 refusals, and a server without CAPA") {
    SUBCASE("STLS refused") {
        Dialogue d{Protocol::Pop3, "h"};
        const auto run = play(d, {"+OK ready", "-ERR Unknown command"});
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "the server refused STLS: -ERR Unknown command");
    }
    SUBCASE("greeting refused") {
        Dialogue d{Protocol::Pop3, "h"};
        const auto run = play(d, {"-ERR busy"});
        CHECK(run.error == "the server refused the connection: -ERR busy");
    }
    SUBCASE("no CAPA: not an error, but said") {
        Dialogue d{Protocol::Pop3, "h"};
        const auto run = play(d, {"+OK ready", "+OK go", kTls, "-ERR what?", "+OK bye"});
        CHECK(run.end == Then::Close);
        CHECK(d.capabilities_read());
        CHECK(d.capabilities().empty());
        CHECK(d.capabilities_note() == "the server does not support CAPA: -ERR what?");
    }
    SUBCASE("closed in the middle of CAPA") {
        Dialogue d{Protocol::Pop3, "h"};
        const auto run = play(d, {"+OK ready", "+OK go", kTls, "+OK", "TOP"}, true);
        CHECK(run.end == Then::Fail);
        CHECK(run.error == "the server closed the connection while listing its capabilities");
        CHECK_FALSE(d.capabilities_read());
    }
}

TEST_CASE("probe_dialogue: quoted server text is cut") {
    Dialogue d{Protocol::Pop3, "h"};
    const std::string line = "-ERR " + std::string(500, 'x');
    const auto run = play(d, {line});
    CHECK(run.end == Then::Fail);
    CHECK(run.error.size() == std::string_view{"the server refused the connection: "}.size() +
                                  Dialogue::kMaxQuoted + 3);
    CHECK(run.error.ends_with("xxx..."));
}
