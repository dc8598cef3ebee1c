// SMTP machine on STARTTLS listeners (RFC 3207): postern's own plaintext dialogue, the
// upgrade, the backend greeting read and dropped after TLS, the plaintext-backend path of a
// public MX (require_tls = false), and the injection and limit cases; every dialogue split
// at every byte offset (dialogue.hpp).

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
using test::AtStartTls;
using test::backend;
using test::cat;
using test::check_splits;
using test::client;
using test::event;

constexpr std::string_view kOurGreeting = "220 mx.test ESMTP ready\r\n";
constexpr std::string_view kBackendGreeting = "220 backend.test ESMTP Postfix (Debian/GNU)\r\n";
constexpr std::string_view kBackendEhlo =
    "250-backend.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
    "250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";
constexpr std::string_view kBackendEhloFiltered =
    "250-backend.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";
// What postern learned from the backend's EHLO ahead of time, as MachineSettings carries it.
std::vector<std::string> extensions() {
    return {"PIPELINING",       "SIZE 10240000",       "STARTTLS", "AUTH PLAIN LOGIN",
            "AUTH=PLAIN LOGIN", "ENHANCEDSTATUSCODES", "CHUNKING"};
}
constexpr std::string_view kOurEhloRequireTls =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n"
    "250-CHUNKING\r\n250 STARTTLS\r\n";
// A plaintext MX (require_tls = false) offers the same: never AUTH before TLS.
constexpr std::string_view kOurEhloPlaintextOk = kOurEhloRequireTls;
constexpr std::string_view kGoAhead = "220 2.0.0 Ready to start TLS\r\n";

MachineSettings submission() {  // port 587: require_tls
    MachineSettings s = test::starttls_settings_for(Protocol::Smtp, true);
    s.smtp_extensions = std::make_shared<const std::vector<std::string>>(extensions());
    return s;
}

MachineSettings mx() {  // port 25: plaintext allowed (RFC 3207 §4)
    MachineSettings s = submission();
    s.require_tls = false;
    return s;
}

// The upgrade and the backend connection after it: TLS done, backend up, greeting dropped.
test::Script upgraded(test::Script before, const test::Script& after) {
    return test::upgraded(kBackendGreeting, std::move(before), after);
}

TEST_CASE("smtp starttls: own greeting and EHLO, upgrade, then the backend's dialogue") {
    const auto t = check_splits(
        submission(),
        upgraded({client("EHLO client.example\r\n"), client("STARTTLS\r\n")},
                 {client("EHLO client.example\r\n"), backend(kBackendEhlo),
                  client("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:<joe@x>\r\n"),
                  backend("235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n")}));
    CHECK(t.actions == std::vector<std::string>{
                           cat({"to_client:", kOurGreeting, kOurEhloRequireTls, kGoAhead}),
                           "start_tls", "connect", "to_backend:EHLO client.example\r\n",
                           cat({"to_client:", kBackendEhloFiltered}),
                           "to_backend:AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n",
                           "to_client:235 2.7.0 Authentication successful\r\n",
                           "to_backend:MAIL FROM:<joe@x>\r\n", "to_client:250 2.1.0 Ok\r\n"});
    CHECK(t.raw_to_backend.empty());
    CHECK(t.raw_to_client.empty());
}

TEST_CASE("smtp starttls: the machine goes through its phases") {
    CHECK(check_splits(submission(), {}).state == "accepted");
    CHECK(check_splits(submission(), accepted({})).state == "pre_tls");
    CHECK(check_splits(submission(), accepted({client("STARTTLS\r\n")})).state == "tls_pending");
    CHECK(check_splits(submission(), accepted({client("STARTTLS\r\n"), event(Event::TlsReady)}))
              .state == "connecting");
    CHECK(check_splits(submission(), upgraded({client("STARTTLS\r\n")}, {})).state == "command");
    // Out-of-order events are ignored: no TLS without StartTls, no second greeting.
    const auto odd =
        check_splits(submission(), {event(Event::TlsReady), event(Event::ClientConnected),
                                    event(Event::ClientConnected), event(Event::TlsReady),
                                    event(Event::BackendReady), client("NOOP\r\n")});
    CHECK(odd.actions ==
          std::vector<std::string>{cat({"to_client:", kOurGreeting, "250 2.0.0 Ok\r\n"})});
    CHECK(odd.state == "pre_tls");
}

TEST_CASE("smtp starttls: bytes pipelined after STARTTLS are never executed") {
    const std::string injected = "STARTTLS\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:<x@y>\r\n";
    for (const AtStartTls at : {AtStartTls::Drop, AtStartTls::Reoffer}) {
        const auto t = check_splits(submission(),
                                    upgraded({client("EHLO c\r\n" + injected)},
                                             {client("EHLO c\r\n"), backend(kBackendEhlo),
                                              client("QUIT\r\n"), backend("221 2.0.0 Bye\r\n")}),
                                    at);
        CHECK(t.to_backend() == "EHLO c\r\nQUIT\r\n");
        CHECK(t.to_client() == cat({kOurGreeting, kOurEhloRequireTls, kGoAhead,
                                    kBackendEhloFiltered, "221 2.0.0 Bye\r\n"}));
        if (at == AtStartTls::Drop) {
            CHECK(t.dropped_at_starttls == injected.substr(10));
        }
    }

    // Driven by hand: the call consumes exactly the STARTTLS line and stops there.
    auto machine = make_machine(submission());
    Actions out;
    machine->on_event(Event::ClientConnected, out);
    out.clear();
    CHECK(machine->on_bytes(Peer::Client, injected, out) == 10);
    REQUIRE(out.size() == 2);
    CHECK(std::get<SendToClient>(out[0]).bytes == kGoAhead);
    CHECK(std::holds_alternative<StartTls>(out[1]));
    out.clear();
    CHECK(machine->on_bytes(Peer::Client, injected.substr(10), out) == injected.size() - 10);
    CHECK(out.empty());
    machine->on_event(Event::TlsReady, out);
    machine->on_event(Event::BackendReady, out);
    CHECK(machine->on_bytes(Peer::Backend, kBackendGreeting, out) == kBackendGreeting.size());
    CHECK(out.size() == 1);  // ConnectBackend, nothing else
    CHECK(std::holds_alternative<ConnectBackend>(out[0]));
}

TEST_CASE("smtp starttls: what was learned before TLS is forgotten (RFC 3207 §4.2)") {
    // On a plaintext-friendly MX the pre-TLS EHLO would be replayed if the client stayed in
    // plaintext; after STARTTLS it must not be.
    const auto t =
        check_splits(mx(), upgraded({client("EHLO before.tls\r\nSTARTTLS\r\n")},
                                    {client("MAIL FROM:<a@x>\r\n"),
                                     backend("503 5.5.1 Error: send HELO/EHLO first\r\n")}));
    CHECK(t.to_backend() == "MAIL FROM:<a@x>\r\n");
    CHECK(t.to_client().ends_with(cat({kGoAhead, "503 5.5.1 Error: send HELO/EHLO first\r\n"})));
}

TEST_CASE("smtp starttls: extensions are filtered before postern repeats them") {
    MachineSettings s = submission();
    s.smtp_extensions = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{
        "8BITMIME", "starttls", "STARTTLS extra", "Auth LOGIN", "auth=login", "AUTHX",
        "X\r\n250 INJECTED", "", " LEADING", std::string(507, 'L'), std::string(506, 'K'),
        "BAD\x7f", "UTF8-\xc3\xa9", "DSN"});
    const auto t = check_splits(s, accepted({client("EHLO c\r\n")}));
    CHECK(t.to_client() == cat({kOurGreeting, "250-mx.test\r\n250-8BITMIME\r\n250-AUTHX\r\n250-",
                                std::string(506, 'K'), "\r\n250-DSN\r\n250 STARTTLS\r\n"}));

    MachineSettings none = submission();
    none.smtp_extensions = std::make_shared<const std::vector<std::string>>();
    none.hostname.clear();
    const auto bare = check_splits(none, accepted({client("EHLO c\r\nHELO c\r\n")}));
    CHECK(bare.to_client() ==
          "220 ESMTP ready\r\n250-localhost\r\n250 STARTTLS\r\n250 localhost\r\n");

    const auto plain = check_splits(mx(), accepted({client("ehlo c\r\n")}));
    CHECK(plain.to_client() == cat({kOurGreeting, kOurEhloPlaintextOk}));
}

TEST_CASE("smtp starttls: require_tls refuses mail and AUTH with 530 before TLS") {
    const auto t = check_splits(
        submission(),
        accepted({client("EHLO c\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nMAIL FROM:<a@x>\r\n"
                         "RCPT TO:<b@y>\r\nDATA\r\nBDAT 3 LAST\r\nVRFY joe\r\nEXPN list\r\n"
                         "ETRN x\r\nXCLIENT ADDR=1.2.3.4\r\n"),
                  client("HELO c\r\nHELP\r\nRSET\r\nNOOP\r\nHELO\r\nEHLO \r\nSTARTTLS now\r\n"
                         "\r\nQUIT\r\n")}));
    const std::string must(replies::kSmtpMustStartTls);
    CHECK(t.to_client() ==
          cat({kOurGreeting, kOurEhloRequireTls, must, must, must, must, must, must, must, must,
               replies::kSmtpNotPermitted, "250 mx.test\r\n",
               "214 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n",
               "501 5.5.4 Syntax: HELO hostname\r\n501 5.5.4 Syntax: EHLO hostname\r\n",
               "501 5.5.4 Syntax: STARTTLS\r\n500 5.5.2 Error: bad syntax\r\n221 2.0.0 Bye\r\n"}));
    CHECK(t.actions.back() == "close:client_quit");
    CHECK_FALSE(t.has("connect"));
    CHECK(t.to_backend().empty());
}

TEST_CASE("smtp starttls: errors in a row close the session, a good command resets them") {
    MachineSettings s = submission();
    s.max_errors = 3;
    const auto t =
        check_splits(s, accepted({client("AUTH LOGIN\r\nFOO\r\nNOOP\r\nMAIL FROM:<a@x>\r\n"
                                         "BAR\r\nRCPT TO:<b@y>\r\nNOOP\r\n")}));
    CHECK(t.to_client() ==
          cat({kOurGreeting, replies::kSmtpMustStartTls, replies::kSmtpUnknown, replies::kSmtpOk,
               replies::kSmtpMustStartTls, replies::kSmtpUnknown, replies::kSmtpMustStartTls,
               "421 4.7.0 mx.test Error: too many errors\r\n"}));
    CHECK(t.actions.back() == "close:too_many_errors");

    // After TLS a STARTTLS is the protocol's error, counted the same way.
    const auto after = check_splits(
        s,
        upgraded({client("STARTTLS\r\n")}, {client("EHLO c\r\n"), backend(kBackendEhlo),
                                            client("STARTTLS\r\nNOOP\r\nSTARTTLS\r\nSTARTTLS\r\n"),
                                            backend("250 2.0.0 Ok\r\n"), client("STARTTLS\r\n")}));
    CHECK(after.to_backend() == "EHLO c\r\nNOOP\r\n");
    CHECK(after.to_client().ends_with(
        cat({kBackendEhloFiltered, replies::kSmtpTlsActive, "250 2.0.0 Ok\r\n",
             replies::kSmtpTlsActive, replies::kSmtpTlsActive, replies::kSmtpTlsActive,
             "421 4.7.0 mx.test Error: too many errors\r\n"})));
    CHECK(after.actions.back() == "close:too_many_errors");
}

TEST_CASE("smtp starttls: bad bytes and long lines before TLS close the session") {
    MachineSettings s = submission();
    s.max_line = 16;
    const auto fits = check_splits(s, accepted({client("EHLO 012345678\r\n")}));  // 16 bytes
    CHECK(fits.to_client().ends_with("250 STARTTLS\r\n"));
    const auto over = check_splits(s, accepted({client("EHLO 0123456789\r\n")}));
    CHECK(over.to_client() == cat({kOurGreeting, replies::kSmtpLineTooLong}));
    CHECK(over.actions.back() == "close:line_too_long");

    const auto nul = check_splits(submission(), accepted({client(std::string("NOOP\0\r\n", 7))}));
    CHECK(nul.to_client() == cat({kOurGreeting, replies::kSmtpNulByte}));
    CHECK(nul.actions.back() == "close:protocol_error");

    // A TLS ClientHello on the STARTTLS port is refused at its first byte, no line needed.
    const auto hello = check_splits(
        submission(), accepted({client(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9))}));
    CHECK(hello.to_client() == cat({kOurGreeting, replies::kSmtpJunk}));
    CHECK(hello.actions.back() == "close:protocol_error");

    for (const std::string_view junk :
         {"NOOP\rSTARTTLS\r\n", "\xc3\x89HLO c\r\n", "NO\x1bOP\r\n", "NOOP\r\r\n"}) {
        CAPTURE(test::escape(junk));
        const auto t = check_splits(submission(), accepted({client("NOOP\r\n"), client(junk)}));
        CHECK(t.to_client() == cat({kOurGreeting, replies::kSmtpOk, replies::kSmtpJunk}));
        CHECK(t.actions.back() == "close:protocol_error");
    }
    // UTF-8 is fine in arguments (RFC 6531), and bare LF ends a line.
    const auto utf8 = check_splits(submission(), accepted({client("HELO \xc3\xa9.test\nNOOP\n")}));
    CHECK(utf8.to_client() == cat({kOurGreeting, "250 mx.test\r\n", replies::kSmtpOk}));
}

TEST_CASE("smtp starttls: client bytes after TLS wait for the backend greeting") {
    const auto t =
        check_splits(submission(),
                     accepted({client("STARTTLS\r\n"), event(Event::TlsReady), client("EHLO c\r\n"),
                               event(Event::BackendReady), backend("220-backend.test ESMTP\r\n"),
                               backend("220 more greeting\r\n"), backend(kBackendEhlo)}));
    CHECK(t.actions == std::vector<std::string>{cat({"to_client:", kOurGreeting, kGoAhead}),
                                                "start_tls", "connect", "to_backend:EHLO c\r\n",
                                                cat({"to_client:", kBackendEhloFiltered})});
}

TEST_CASE("smtp starttls: a refusing backend greeting after TLS is relayed and closes") {
    const auto t = check_splits(submission(),
                                upgraded({client("STARTTLS\r\n")}, {}));  // sanity: 220 is dropped
    CHECK(t.to_client() == cat({kOurGreeting, kGoAhead}));

    for (const std::string_view refusal : {"554-backend.test\r\n554 5.7.1 Service unavailable\r\n",
                                           "421 4.3.2 Service shutting down\r\n"}) {
        const auto r = check_splits(
            submission(),
            accepted({client("STARTTLS\r\n"), event(Event::TlsReady), client("EHLO c\r\n"),
                      event(Event::BackendReady), backend(refusal)}));
        CHECK(r.to_client() == cat({kOurGreeting, kGoAhead, refusal}));
        CHECK(r.actions.back() == "close:backend_unreachable");
        CHECK(r.to_backend().empty());
    }

    const auto junk = check_splits(
        submission(), accepted({client("STARTTLS\r\n"), event(Event::TlsReady),
                                event(Event::BackendReady), backend("* OK IMAP4rev1\r\n")}));
    CHECK(junk.to_client().ends_with(replies::smtp_backend_unavailable("mx.test")));
    CHECK(junk.actions.back() == "close:protocol_error");

    const auto failed = check_splits(
        submission(),
        accepted({client("STARTTLS\r\n"), event(Event::TlsReady), event(Event::BackendFailed)}));
    CHECK(failed.to_client().ends_with(
        "421 4.3.0 mx.test Service not available, try again later\r\n"));
    CHECK(failed.actions.back() == "close:backend_unreachable");
}

TEST_CASE("smtp starttls: a plaintext MX replays the client's EHLO and relays from there") {
    const std::string content = "Subject: hi\r\n\r\nSTARTTLS\r\n.\r\n";
    const auto t = check_splits(
        mx(),
        accepted({client("EHLO sender.example\r\nMAIL FROM:<a@sender.example>\r\n"
                         "RCPT TO:<b@mx.test>\r\n"),
                  event(Event::BackendReady), backend(kBackendGreeting), backend(kBackendEhlo),
                  backend("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"), client("STARTTLS\r\nDATA\r\n"),
                  backend("354 End data with <CR><LF>.<CR><LF>\r\n"), client(content + "QUIT\r\n"),
                  backend("250 2.0.0 Ok: queued as 1\r\n221 2.0.0 Bye\r\n")}));
    CHECK(t.actions ==
          std::vector<std::string>{
              cat({"to_client:", kOurGreeting, kOurEhloPlaintextOk}), "connect",
              cat({"to_backend:EHLO sender.example\r\n", "MAIL FROM:<a@sender.example>\r\n",
                   "RCPT TO:<b@mx.test>\r\n"}),
              "to_client:250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n454 4.7.0 TLS not available\r\n",
              "to_backend:DATA\r\n", "to_client:354 End data with <CR><LF>.<CR><LF>\r\n",
              "to_backend:" + content + "QUIT\r\n",
              "to_client:250 2.0.0 Ok: queued as 1\r\n221 2.0.0 Bye\r\n", "close:client_quit"});
}

TEST_CASE("smtp starttls: a plaintext MX replays HELO, or nothing if none was sent") {
    const auto helo = check_splits(
        mx(), accepted({client("HELO old.example\r\nRSET\r\nVRFY joe\r\n"),
                        event(Event::BackendReady), backend(kBackendGreeting),
                        backend("250 backend.test\r\n"), backend("252 2.0.0 joe\r\n")}));
    CHECK(helo.to_backend() == "HELO old.example\r\nVRFY joe\r\n");
    CHECK(helo.to_client() ==
          cat({kOurGreeting, "250 mx.test\r\n250 2.0.0 Ok\r\n252 2.0.0 joe\r\n"}));

    const auto none =
        check_splits(mx(), accepted({client("MAIL FROM:<a@x>\r\n"), event(Event::BackendReady),
                                     backend(kBackendGreeting),
                                     backend("503 5.5.1 Error: send HELO/EHLO first\r\n")}));
    CHECK(none.to_backend() == "MAIL FROM:<a@x>\r\n");
    CHECK(none.to_client() == cat({kOurGreeting, "503 5.5.1 Error: send HELO/EHLO first\r\n"}));

    // Unknown commands are the backend's to answer on a plaintext MX.
    const auto unknown = check_splits(
        mx(), accepted({client("XFOO\r\n"), event(Event::BackendReady), backend(kBackendGreeting),
                        backend("502 5.5.2 Error: command not recognized\r\n")}));
    CHECK(unknown.to_backend() == "XFOO\r\n");
}

TEST_CASE("smtp starttls: a plaintext MX whose backend refuses closes with its reply") {
    const auto greeting = check_splits(
        mx(), accepted({client("EHLO c\r\nMAIL FROM:<a@x>\r\n"), event(Event::BackendReady),
                        backend("554 5.7.1 No SMTP service here\r\n")}));
    CHECK(greeting.to_client() ==
          cat({kOurGreeting, kOurEhloPlaintextOk, "554 5.7.1 No SMTP service here\r\n"}));
    CHECK(greeting.to_backend().empty());
    CHECK(greeting.actions.back() == "close:backend_unreachable");

    const auto ehlo = check_splits(
        mx(), accepted({client("EHLO c\r\nMAIL FROM:<a@x>\r\n"), event(Event::BackendReady),
                        backend(kBackendGreeting),
                        backend("550-5.7.1 Client host rejected\r\n550 5.7.1 go away\r\n")}));
    CHECK(ehlo.to_backend() == "EHLO c\r\n");
    CHECK(ehlo.to_client().ends_with("550-5.7.1 Client host rejected\r\n550 5.7.1 go away\r\n"));
    CHECK(ehlo.actions.back() == "close:backend_unreachable");

    const auto failed =
        check_splits(mx(), accepted({client("MAIL FROM:<a@x>\r\n"), event(Event::BackendFailed)}));
    CHECK(failed.to_client().ends_with(replies::smtp_backend_unavailable("mx.test")));
    CHECK(failed.actions.back() == "close:backend_unreachable");
}

// Issue 13: with require_tls = false the pre-TLS EHLO listed the backend's AUTH and AUTH went to
// the backend in clear, where it succeeded (the backend sees every client come from postern).
TEST_CASE("smtp starttls: a plaintext MX neither offers nor forwards AUTH before TLS") {
    const std::string must(replies::kSmtpMustStartTls);
    const auto before = check_splits(
        mx(),
        accepted({client("EHLO c\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nauth login\r\nQUIT\r\n")}));
    CHECK(before.to_client() ==
          cat({kOurGreeting, kOurEhloPlaintextOk, must, must, "221 2.0.0 Bye\r\n"}));
    CHECK_FALSE(before.has("connect"));

    // Gone on in plaintext: AUTH is answered in its turn, never forwarded, and AUTH is withheld
    // from the backend's EHLO replies; mail goes on.
    const auto relayed = check_splits(
        mx(), accepted({client("MAIL FROM:<a@x>\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nEHLO c\r\n"),
                        event(Event::BackendReady), backend(kBackendGreeting),
                        backend("250 2.1.0 Ok\r\n"), backend(kBackendEhlo),
                        client("AUTH LOGIN\r\nEHLO c\r\nRCPT TO:<b@y>\r\n"),
                        backend("250-backend.test\r\n250-AUTH=PLAIN\r\n250 AUTH PLAIN\r\n"),
                        backend("250 2.1.5 Ok\r\n")}));
    CHECK(relayed.to_backend() == "MAIL FROM:<a@x>\r\nEHLO c\r\nEHLO c\r\nRCPT TO:<b@y>\r\n");
    const std::string plaintext_ehlo =
        "250-backend.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";
    CHECK(relayed.to_client() == cat({kOurGreeting, "250 2.1.0 Ok\r\n", must, plaintext_ehlo, must,
                                      "250 backend.test\r\n250 2.1.5 Ok\r\n"}));

    // After STARTTLS the backend's AUTH is offered and used as on any TLS session.
    const auto upgraded_mx =
        check_splits(mx(), upgraded({client("EHLO c\r\nSTARTTLS\r\n")},
                                    {client("EHLO c\r\n"), backend(kBackendEhlo),
                                     client("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"),
                                     backend("235 2.7.0 Authentication successful\r\n")}));
    CHECK(upgraded_mx.to_backend() == "EHLO c\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\n");
    CHECK(upgraded_mx.to_client().ends_with(
        cat({kBackendEhloFiltered, "235 2.7.0 Authentication successful\r\n"})));
}

TEST_CASE("smtp starttls: a plaintext MX still upgrades when asked before any mail") {
    const auto t = check_splits(
        mx(), upgraded({client("EHLO c\r\nSTARTTLS\r\n")},
                       {client("EHLO c\r\n"), backend(kBackendEhlo), client("STARTTLS\r\n")}));
    CHECK(t.to_backend() == "EHLO c\r\n");
    CHECK(t.to_client().ends_with(cat({kBackendEhloFiltered, replies::kSmtpTlsActive})));
}

TEST_CASE("timeout replies, one per protocol") {
    CHECK(replies::timeout_reply(Protocol::Smtp, "mx.test") ==
          "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    CHECK(replies::timeout_reply(Protocol::Smtp, "") == "421 4.4.2 Error: timeout exceeded\r\n");
    CHECK(replies::timeout_reply(Protocol::Imap, "mx.test") ==
          "* BYE Autologout; idle for too long\r\n");
    CHECK(replies::timeout_reply(Protocol::Pop3, "mx.test") ==
          "-ERR Autologout; idle for too long\r\n");
}

}  // namespace
}  // namespace postern::protocols
