// SMTP machine in implicit-TLS mode: dialogues against Postfix's real greeting and EHLO reply,
// each split at every byte offset (dialogue.hpp), so DATA terminators and BDAT chunk ends
// are cut everywhere.

#include "protocols/machine.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

namespace postern::protocols {
namespace {

using test::backend;
using test::check_splits;
using test::client;
using test::connected;
using test::event;

constexpr std::string_view kGreeting = "220 mx.test ESMTP Postfix (Debian/GNU)\r\n";
constexpr std::string_view kEhloReply =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n";
constexpr std::string_view kEhloReplyFiltered =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";

MachineSettings smtp() {
    return test::settings_for(Protocol::Smtp);
}

std::string greeted(std::string_view rest) {
    return std::string(kGreeting) + std::string(rest);
}

TEST_CASE("smtp: Postfix EHLO reply loses its STARTTLS line, every other byte unchanged") {
    const auto t = check_splits(
        smtp(),
        connected({backend(kGreeting), client("EHLO client.example\r\n"), backend(kEhloReply)}));
    CHECK(t.to_client() == greeted(kEhloReplyFiltered));
    CHECK(t.to_backend() == "EHLO client.example\r\n");
    CHECK(t.state == "command");
}

TEST_CASE("smtp: STARTTLS as the last EHLO line makes the line before it the last") {
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("ehlo client.example\r\n"),
                           backend("250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                   "250 starttls\r\n"),
                           client("EHLO again\r\n"), backend("250-mx.test\r\n250 STARTTLS\r\n")}));
    CHECK(t.to_client() == greeted("250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                                   "250 mx.test\r\n"));
}

TEST_CASE("smtp: only whole STARTTLS keywords in 250 EHLO lines are dropped") {
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("EHLO c\r\n"),
                           backend("250-STARTTLS.mx.test\r\n250-STARTTLSX\r\n250-X-STARTTLS\r\n"
                                   "250 HELP\r\n"),
                           client("HELO c\r\n"), backend("250 mx.test\r\n"), client("EHLO c\r\n"),
                           backend("550-mx.test\r\n550 STARTTLS\r\n"), client("EHLO c\r\n"),
                           backend("250-STARTTLS\r\n250 8BITMIME\r\n")}));
    // The first line names the server (here one called "STARTTLS"), never an extension.
    CHECK(t.to_client() == greeted("250-STARTTLS.mx.test\r\n250-STARTTLSX\r\n250-X-STARTTLS\r\n"
                                   "250 HELP\r\n250 mx.test\r\n550-mx.test\r\n550 STARTTLS\r\n"
                                   "250-STARTTLS\r\n250 8BITMIME\r\n"));
}

TEST_CASE("smtp: a pipelined MX transaction relays its content, bare LF as CRLF") {
    const std::string content =
        "Subject: capabilities\r\n\r\n250-STARTTLS\r\nSTARTTLS\r\n..STARTTLS\r\n"
        "bare\n.\nstill content\r\n.\nand\r\n.x\r\nlf\n.\r\nmore\r\n\n.\r\n\r\n..\r\n.\r\n";
    // Only "\r\n.\r\n" ends it; each bare LF becomes CRLF and each "." line that is not the
    // end is stuffed, so the backend cannot end it anywhere else (smtp_content.hpp).
    const std::string normalized =
        "Subject: capabilities\r\n\r\n250-STARTTLS\r\nSTARTTLS\r\n..STARTTLS\r\n"
        "bare\r\n..\r\nstill content\r\n..\r\nand\r\n.x\r\nlf\r\n..\r\nmore\r\n\r\n..\r\n\r\n"
        "..\r\n.\r\n";
    const auto t = check_splits(
        smtp(),
        connected({backend(kGreeting), client("EHLO client.example\r\n"), backend(kEhloReply),
                   client("MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n"),
                   backend("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>"
                           "\r\n"),
                   client(content + "EHLO client.example\r\nSTARTTLS\r\n"),
                   backend("250 2.0.0 Ok: queued as 4XyZ1\r\n"), backend(kEhloReply),
                   client("QUIT\r\n"), backend("221 2.0.0 Bye\r\n")}));
    CHECK(t.to_backend() ==
          "EHLO client.example\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.test>\r\n"
          "DATA\r\n" +
              normalized + "EHLO client.example\r\nQUIT\r\n");
    CHECK(t.to_client() == greeted(std::string(kEhloReplyFiltered) +
                                   "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with "
                                   "<CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4XyZ1\r\n" +
                                   std::string(kEhloReplyFiltered) +
                                   "503 5.5.1 TLS already active\r\n221 2.0.0 Bye\r\n"));
    CHECK(t.actions.back() == "close:client_quit");
}

// Issue 13: "\n.\n" ended DATA at Postfix 3.7 (smtpd_forbid_bare_newline = no) but not at
// postern, so the commands after it reached the backend unseen: a second message, an XCLIENT
// or a STARTTLS the machine never filtered. Now the backend gets them as content, as postern
// sees them, and the next command after the real end is the machine's again.
TEST_CASE("smtp: commands smuggled after a bare-LF dot stay content at the backend too") {
    const std::string smuggled =
        "Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n"
        "XCLIENT ADDR=192.0.2.66\r\nSTARTTLS\r\nSubject: smuggled\r\n\r\n.\r\n";
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting),
                           client("MAIL FROM:<a@x>\r\nRCPT TO:<b@mx.test>\r\n"
                                  "DATA\r\n"),
                           backend("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"),
                           client(smuggled + "STARTTLS\r\nQUIT\r\n"),
                           backend("250 2.0.0 Ok: queued as 1\r\n221 2.0.0 Bye\r\n")}));
    CHECK(t.to_backend() ==
          "MAIL FROM:<a@x>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n"
          "Subject: one\r\n\r\nbody\r\n..\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<b@mx.test>\r\n"
          "DATA\r\nXCLIENT ADDR=192.0.2.66\r\nSTARTTLS\r\nSubject: smuggled\r\n\r\n.\r\n"
          "QUIT\r\n");
    CHECK(t.to_client() == greeted("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"
                                   "250 2.0.0 Ok: queued as 1\r\n503 5.5.1 TLS already active\r\n"
                                   "221 2.0.0 Bye\r\n"));
    CHECK(t.actions.back() == "close:client_quit");
}

TEST_CASE("smtp: content is forwarded in chunks, not line by line") {
    auto machine = make_machine(smtp());
    Actions out;
    machine->on_event(Event::TlsReady, out);
    machine->on_event(Event::BackendReady, out);
    (void)machine->on_bytes(Peer::Backend, kGreeting, out);
    (void)machine->on_bytes(Peer::Client, "DATA\r\n", out);
    (void)machine->on_bytes(Peer::Backend, "354 go ahead\r\n", out);
    out.clear();
    const std::string part = "line one\r\nline two\r\n.";  // ends inside a possible terminator
    CHECK(machine->on_bytes(Peer::Client, part, out) == part.size());
    REQUIRE(out.size() == 1);
    // The dot is held until it is known whether it ends the content.
    CHECK(std::get<SendToBackend>(out[0]).bytes == "line one\r\nline two\r\n");
    CHECK(machine->state_name() == "data");
    out.clear();
    CHECK(machine->on_bytes(Peer::Client, "\r\nQUIT\r\n", out) == 8);
    CHECK(std::get<SendToBackend>(out[0]).bytes == ".\r\nQUIT\r\n");
    CHECK(machine->state_name() == "command");
}

TEST_CASE("smtp: an empty message ends at its first line") {
    const auto t =
        check_splits(smtp(), connected({backend(kGreeting), client("DATA\r\n"),
                                        backend("354 go ahead\r\n"), client(".\r\nEHLO c\r\n"),
                                        backend("250 2.0.0 Ok: queued\r\n"), backend(kEhloReply)}));
    CHECK(t.to_backend() == "DATA\r\n.\r\nEHLO c\r\n");
    CHECK(t.to_client().ends_with(kEhloReplyFiltered));
}

TEST_CASE("smtp: the line after DATA waits for the reply to DATA") {
    SUBCASE("354: content sent early stays content, the next EHLO is a command") {
        const auto t =
            check_splits(smtp(), connected({backend(kGreeting), client("DATA\r\nEHLO x\r\n.\r\n"),
                                            backend("354 End data with <CR><LF>.<CR><LF>\r\n"),
                                            backend("250 2.0.0 Ok: queued\r\n"),
                                            client("EHLO c\r\n"), backend(kEhloReply)}));
        CHECK(t.to_backend() == "DATA\r\nEHLO x\r\n.\r\nEHLO c\r\n");
        CHECK(t.to_client().ends_with(kEhloReplyFiltered));
    }
    SUBCASE("354: it is content") {
        const auto t =
            check_splits(smtp(), connected({backend(kGreeting), client("DATA\r\nSTARTTLS\r\n.\r\n"),
                                            backend("354 End data with <CR><LF>.<CR><LF>\r\n")}));
        CHECK(t.to_backend() == "DATA\r\nSTARTTLS\r\n.\r\n");
    }
    SUBCASE("554: it is a command") {
        const auto t =
            check_splits(smtp(), connected({backend(kGreeting), client("DATA\r\nSTARTTLS\r\n"),
                                            backend("554 5.5.1 Error: no valid recipients\r\n")}));
        CHECK(t.to_backend() == "DATA\r\n");
        CHECK(t.actions.back().ends_with("503 5.5.1 TLS already active\r\n"));
    }
}

TEST_CASE("smtp: BDAT chunks pass exactly their size, whatever they hold") {
    const std::string chunk = "Subject: x\r\n\r\nSTARTTLS\r\n.\r\n";
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("EHLO c\r\n"), backend(kEhloReply),
                           client("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT " +
                                  std::to_string(chunk.size()) + "\r\n" + chunk +
                                  "BDAT 0 LAST\r\nSTARTTLS\r\n"),
                           backend("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 27 bytes\r\n"
                                   "250 2.0.0 Ok: queued as 4XyZ2\r\n")}));
    CHECK(t.to_backend() == "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT " +
                                std::to_string(chunk.size()) + "\r\n" + chunk + "BDAT 0 LAST\r\n");
    CHECK(t.actions.back() ==
          "to_client:250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 27 bytes\r\n"
          "250 2.0.0 Ok: queued as 4XyZ2\r\n503 5.5.1 TLS already active\r\n");
}

// Issue 13: BDAT went to backends that never offered CHUNKING, which read its chunk as
// commands that postern had taken for content. Now postern answers 502 itself, in its turn, and
// drops the chunk: neither side acts on its bytes.
TEST_CASE("smtp: BDAT without CHUNKING in the backend's last EHLO reply is refused here") {
    const std::string no_chunking = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
    const std::string refused = "502 5.5.1 Error: command not implemented\r\n";
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("BDAT 11\r\nXCLIENT A\r\n"),
                           client("EHLO c\r\n"), backend(no_chunking),
                           client("MAIL FROM:<a@x>\r\nBDAT 10 LAST\r\nSTARTTLS\r\nNOOP\r\n"),
                           backend("250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n")}));
    CHECK(t.to_backend() == "EHLO c\r\nMAIL FROM:<a@x>\r\nNOOP\r\n");
    CHECK(t.to_client() ==
          greeted(refused + no_chunking + "250 2.1.0 Ok\r\n" + refused + "250 2.0.0 Ok\r\n"));
    CHECK(t.state == "command");

    // Pipelined right after EHLO, BDAT waits for its reply; a later EHLO reply without CHUNKING
    // replaces it.
    const auto again =
        check_splits(smtp(), connected({backend(kGreeting), client("EHLO c\r\nBDAT 3 LAST\r\nabc"),
                                        backend(kEhloReply), backend("250 2.0.0 Ok: queued\r\n"),
                                        client("EHLO c\r\nBDAT 3 LAST\r\nabcQUIT\r\n"),
                                        backend(no_chunking), backend("221 2.0.0 Bye\r\n")}));
    CHECK(again.to_backend() == "EHLO c\r\nBDAT 3 LAST\r\nabcEHLO c\r\nQUIT\r\n");
    CHECK(again.to_client().ends_with(no_chunking + refused + "221 2.0.0 Bye\r\n"));

    // A plaintext MX learns it from the reply to the client's replayed EHLO.
    const auto mx = check_splits(
        test::starttls_settings_for(Protocol::Smtp, false),
        test::accepted({client("EHLO c\r\nMAIL FROM:<a@x>\r\n"), event(Event::BackendReady),
                        backend(kGreeting), backend("250-mx.test\r\n250 CHUNKING\r\n"),
                        backend("250 2.1.0 Ok\r\n"), client("BDAT 3 LAST\r\nabc"),
                        backend("250 2.0.0 Ok: queued\r\n")}));
    CHECK(mx.to_backend() == "EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 3 LAST\r\nabc");
    CHECK(mx.to_client().ends_with("250 2.1.0 Ok\r\n250 2.0.0 Ok: queued\r\n"));
}

TEST_CASE("smtp: a malformed BDAT closes the session") {
    for (const std::string_view bad :
         {"BDAT 12x\r\n", "BDAT -1\r\n", "BDAT\r\n", "BDAT 4294967296\r\n", "BDAT 5 LAST junk\r\n",
          "BDAT 5 FIRST\r\n"}) {
        CAPTURE(bad);
        const auto t = check_splits(smtp(), connected({backend(kGreeting), client(bad)}));
        CHECK(t.actions.back() == "close:protocol_error");
        CHECK(t.to_client() == greeted("501 5.5.4 Invalid BDAT chunk size\r\n"));
        CHECK(t.to_backend().empty());
    }
}

TEST_CASE("smtp: after 235 the machine stays: a later EHLO loses STARTTLS, STARTTLS gets 503") {
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("EHLO c\r\n"),
                           backend("250-mx.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"),
                           client("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:<joe@x>\r\n"),
                           backend("235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"),
                           client("EHLO c\r\n"),
                           backend("250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
                           client("STARTTLS\r\n")}));
    CHECK(t.to_backend() ==
          "EHLO c\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:<joe@x>\r\nEHLO c\r\n");
    CHECK(t.raw_to_backend.empty());
    CHECK(t.to_client() == greeted("250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n"
                                   "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"
                                   "250-mx.test\r\n250 PIPELINING\r\n"
                                   "503 5.5.1 TLS already active\r\n"));
}

TEST_CASE("smtp: AUTH LOGIN challenges carry SASL lines; a failure stays in the machine") {
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("AUTH LOGIN\r\n"),
                           backend("334 VXNlcm5hbWU6\r\n"), client("am9l\r\n"),
                           backend("334 UGFzc3dvcmQ6\r\n"), client("U1RBUlRUTFM=\r\nSTARTTLS\r\n"),
                           backend("535 5.7.8 Error: authentication failed: UGFzc3dvcmQ6\r\n")}));
    CHECK(t.to_backend() == "AUTH LOGIN\r\nam9l\r\nU1RBUlRUTFM=\r\n");
    CHECK_FALSE(t.has("passthrough"));
    CHECK(t.actions.back().ends_with("503 5.5.1 TLS already active\r\n"));
    CHECK(t.state == "command");

    const auto during =
        check_splits(smtp(), connected({backend(kGreeting), client("AUTH LOGIN\r\n")}));
    CHECK(during.state == "auth");
}

TEST_CASE("smtp: STARTTLS is answered locally, after the replies still owed") {
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client("EHLO c\r\nstarttls\r\nNOOP\r\n"),
                           backend(kEhloReply), backend("250 2.0.0 Ok\r\n")}));
    CHECK(t.to_backend() == "EHLO c\r\nNOOP\r\n");
    CHECK(t.to_client() == greeted(std::string(kEhloReplyFiltered) +
                                   "503 5.5.1 TLS already active\r\n250 2.0.0 Ok\r\n"));
}

TEST_CASE("smtp: an error greeting is relayed whole and closes as backend unreachable") {
    const auto t = check_splits(
        smtp(), connected({client("EHLO c\r\n"),
                           backend("554-mx.test\r\n554 5.7.1 Service unavailable; Client host "
                                   "[192.0.2.1] blocked\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{"connect",
                                   "to_client:554-mx.test\r\n554 5.7.1 Service unavailable; "
                                   "Client host [192.0.2.1] blocked\r\n",
                                   "close:backend_unreachable"});
    const auto busy =
        check_splits(smtp(), connected({backend("421 4.3.2 mx.test Service shutting down\r\n")}));
    CHECK(busy.actions.back() == "close:backend_unreachable");
}

TEST_CASE("smtp: backend failure sends 421 with or without a hostname") {
    const auto t = check_splits(smtp(), {event(Event::TlsReady), event(Event::BackendFailed)});
    CHECK(t.to_client() == "421 4.3.0 mx.test Service not available, try again later\r\n");
    CHECK(t.actions.back() == "close:backend_unreachable");

    MachineSettings anonymous = smtp();
    anonymous.hostname.clear();
    const auto a = check_splits(anonymous, {event(Event::TlsReady), event(Event::BackendFailed)});
    CHECK(a.to_client() == "421 4.3.0 Service not available, try again later\r\n");
}

TEST_CASE("smtp: lines over the limits and non-replies close the session") {
    MachineSettings s = smtp();
    s.max_line = std::string_view("MAIL FROM:<abcd@efgh.i>\r\n").size();
    s.max_backend_line = 64;
    const auto fits =
        check_splits(s, connected({backend(kGreeting), client("MAIL FROM:<abcd@efgh.i>\r\n")}));
    CHECK(fits.to_backend() == "MAIL FROM:<abcd@efgh.i>\r\n");
    const auto over =
        check_splits(s, connected({backend(kGreeting), client("MAIL FROM:<abcde@efgh.i>\r\n")}));
    CHECK(over.actions.back() == "close:line_too_long");
    CHECK(over.to_client() == greeted("500 5.5.2 Line too long\r\n"));
    CHECK(over.to_backend().empty());

    const auto long_reply = check_splits(s, connected({backend("220 " + std::string(70, 'x'))}));
    CHECK(long_reply.actions.back() == "close:protocol_error");
    const auto junk = check_splits(
        s, connected({backend(kGreeting), client("NOOP\r\n"), backend("+OK not smtp\r\n")}));
    CHECK(junk.actions.back() == "close:protocol_error");
}

TEST_CASE("smtp: bare-LF commands are forwarded exactly as sent") {
    const auto t =
        check_splits(smtp(), connected({backend(kGreeting), client("EHLO c\nMAIL FROM:<a@x>\n")}));
    CHECK(t.to_backend() == "EHLO c\nMAIL FROM:<a@x>\n");
}

TEST_CASE("smtp: a NUL byte in a command closes the session") {
    const auto t = check_splits(
        smtp(), connected({backend(kGreeting), client(std::string("STARTTLS\0\r\n", 11))}));
    CHECK(t.actions.back() == "close:protocol_error");
    CHECK(t.to_backend().empty());
}

}  // namespace
}  // namespace postern::protocols
