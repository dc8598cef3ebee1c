// POP3 machine in implicit-TLS mode: dialogues against Dovecot's and Courier's real greetings
// and CAPA replies, each split at every byte offset (dialogue.hpp).

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

constexpr std::string_view kDovecotGreeting = "+OK Dovecot (Debian) ready.\r\n";
constexpr std::string_view kDovecotCapa =
    "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\n"
    "SASL PLAIN LOGIN\r\n.\r\n";
constexpr std::string_view kDovecotCapaFiltered =
    "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\n"
    "SASL PLAIN LOGIN\r\n.\r\n";
constexpr std::string_view kCourierGreeting = "+OK Hello there.\r\n";
constexpr std::string_view kCourierCapa =
    "+OK Here's what I can do:\r\nSTLS\r\nTOP\r\nUSER\r\nLOGIN-DELAY 10\r\nPIPELINING\r\nUIDL\r\n"
    "IMPLEMENTATION Courier Mail Server\r\n.\r\n";
constexpr std::string_view kCourierCapaFiltered =
    "+OK Here's what I can do:\r\nTOP\r\nUSER\r\nLOGIN-DELAY 10\r\nPIPELINING\r\nUIDL\r\n"
    "IMPLEMENTATION Courier Mail Server\r\n.\r\n";

MachineSettings pop3() {
    return test::settings_for(Protocol::Pop3);
}

TEST_CASE("pop3: Dovecot USER/PASS dialogue drops STLS from CAPA, then Passthrough") {
    const auto t = check_splits(
        pop3(), connected({backend(kDovecotGreeting), client("CAPA\r\n"), backend(kDovecotCapa),
                           client("USER joe\r\n"), backend("+OK\r\n"), client("PASS secret\r\n"),
                           backend("+OK Logged in.\r\n+OK 2 320\r\n"), client("STAT\r\n")}));
    CHECK(t.to_client() == std::string(kDovecotGreeting) + std::string(kDovecotCapaFiltered) +
                               "+OK\r\n+OK Logged in.\r\n");
    CHECK(t.to_backend() == "CAPA\r\nUSER joe\r\nPASS secret\r\n");
    CHECK(t.actions.back() == "passthrough");
    CHECK(t.raw_to_client == "+OK 2 320\r\n");  // not consumed by the machine
    CHECK(t.raw_to_backend == "STAT\r\n");
}

TEST_CASE("pop3: the +OK to PASS is the last byte the machine consumes") {
    auto machine = make_machine(pop3());
    Actions out;
    machine->on_event(Event::TlsReady, out);
    machine->on_event(Event::BackendReady, out);
    const std::string_view greeting = kCourierGreeting;
    CHECK(machine->on_bytes(Peer::Backend, greeting, out) == greeting.size());
    CHECK(machine->on_bytes(Peer::Client, "USER joe\r\nPASS secret\r\n", out) == 23);
    CHECK(machine->on_bytes(Peer::Backend, "+OK\r\n+OK logged in.\r\n+OK 2 320\r\n", out) == 21);
    CHECK(std::holds_alternative<Passthrough>(out.back()));
    CHECK(machine->on_bytes(Peer::Backend, "+OK 2 320\r\n", out) == 0);
    CHECK(machine->on_bytes(Peer::Client, "STAT\r\n", out) == 0);
}

TEST_CASE("pop3: Courier CAPA loses STLS as its first line") {
    const auto t = check_splits(
        pop3(), connected({backend(kCourierGreeting), client("capa\r\n"), backend(kCourierCapa)}));
    CHECK(t.to_client() == std::string(kCourierGreeting) + std::string(kCourierCapaFiltered));
    CHECK(t.state == "auth");
}

TEST_CASE("pop3: only CAPA replies are filtered; dot-stuffed lines do not end a reply") {
    const auto t = check_splits(
        pop3(), connected({backend(kDovecotGreeting), client("RETR 1\r\n"),
                           backend("+OK 12 octets\r\nPLAIN\r\nSTLS\r\n..\r\n.\r\n"),
                           client("CAPA\r\n"), backend("+OK\r\nstls\r\n..STLS\r\n.\r\n")}));
    CHECK(t.to_client() ==
          std::string(kDovecotGreeting) +
              "+OK 12 octets\r\nPLAIN\r\nSTLS\r\n..\r\n.\r\n+OK\r\n..STLS\r\n.\r\n");

    // Pipelined: a ".." line must not end the first reply, or the CAPA after it would be
    // taken for something else and keep its STLS.
    const auto pipelined = check_splits(
        pop3(), connected({backend(kDovecotGreeting), client("TOP 1 0\r\nCAPA\r\n"),
                           backend("+OK\r\nPLAIN\r\n..\r\n.\r\n+OK\r\nSTLS\r\nUSER\r\n.\r\n")}));
    CHECK(pipelined.to_client() ==
          std::string(kDovecotGreeting) + "+OK\r\nPLAIN\r\n..\r\n.\r\n+OK\r\nUSER\r\n.\r\n");
}

// Issue 13: a bare AUTH was forwarded and its reply assumed multi-line (as Dovecot answers it);
// a backend answering one "+OK" line made the CAPA after it the "body" of that reply, so its
// STLS reached the client. RFC 5034 does not define the reply: postern answers it itself.
TEST_CASE("pop3: a bare AUTH is answered by postern from the backend's CAPA, never forwarded") {
    const auto before_capa =
        check_splits(pop3(), connected({backend(kDovecotGreeting), client("AUTH\r\nCAPA\r\n"),
                                        backend("+OK\r\nSTLS\r\nSASL PLAIN\r\n.\r\n")}));
    CHECK(before_capa.to_backend() == "CAPA\r\n");
    CHECK(before_capa.to_client() == std::string(kDovecotGreeting) +
                                         "-ERR Name a SASL mechanism (CAPA lists them)\r\n"
                                         "+OK\r\nSASL PLAIN\r\n.\r\n");
    CHECK(before_capa.to_client().find("STLS") == std::string::npos);
    CHECK(before_capa.state == "auth");

    // Pipelined after CAPA: it waits for the list, then gets it, one mechanism a line.
    const auto after_capa = check_splits(
        pop3(), connected({backend(kDovecotGreeting), client("CAPA\r\nauth \r\nCAPA\r\n"),
                           backend(kDovecotCapa), backend("+OK\r\nUSER\r\n.\r\n"),
                           client("AUTH\r\nUSER joe\r\n"), backend("+OK\r\n")}));
    CHECK(after_capa.to_backend() == "CAPA\r\nCAPA\r\nUSER joe\r\n");
    CHECK(after_capa.to_client() ==
          std::string(kDovecotGreeting) + std::string(kDovecotCapaFiltered) +
              "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n+OK\r\nUSER\r\n.\r\n"  // the last CAPA: no SASL
              "-ERR Name a SASL mechanism (CAPA lists them)\r\n+OK\r\n");
    CHECK_FALSE(after_capa.has("passthrough"));
}

TEST_CASE("pop3: a failed PASS stays in the machine") {
    const auto t = check_splits(
        pop3(),
        connected({backend(kDovecotGreeting), client("USER joe\r\nPASS wrong\r\n"),
                   backend("+OK\r\n-ERR [AUTH] Authentication failed.\r\n"), client("STLS\r\n")}));
    CHECK_FALSE(t.has("passthrough"));
    CHECK(t.state == "auth");
    CHECK(t.actions.back().ends_with("-ERR TLS is already active\r\n"));
    CHECK(t.to_backend() == "USER joe\r\nPASS wrong\r\n");
}

TEST_CASE("pop3: APOP success goes Passthrough") {
    const auto t = check_splits(
        pop3(), connected({backend("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"),
                           client("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
                           backend("+OK maildrop has 1 message (369 octets)\r\n")}));
    CHECK(t.actions.back() == "passthrough");
}

TEST_CASE("pop3: AUTH continuations reach the backend and +OK goes Passthrough") {
    const auto t = check_splits(
        pop3(), connected({backend(kDovecotGreeting), client("AUTH PLAIN\r\n"), backend("+ \r\n"),
                           client("AGpvZQBzZWNyZXQ=\r\n"), backend("+OK Logged in.\r\n")}));
    CHECK(t.to_backend() == "AUTH PLAIN\r\nAGpvZQBzZWNyZXQ=\r\n");
    CHECK(t.actions.back() == "passthrough");
}

TEST_CASE("pop3: a line pipelined after AUTH waits for the outcome") {
    SUBCASE("failure: it is a command again, and STLS is refused") {
        const auto t = check_splits(
            pop3(),
            connected({backend(kDovecotGreeting), client("AUTH PLAIN AGpvZQB3cm9uZw==\r\nSTLS\r\n"),
                       backend("-ERR [AUTH] Authentication failed.\r\n")}));
        CHECK(t.to_backend() == "AUTH PLAIN AGpvZQB3cm9uZw==\r\n");
        CHECK(t.actions.back().ends_with("-ERR TLS is already active\r\n"));
    }
    SUBCASE("success: it is relayed raw after Passthrough") {
        const auto t = check_splits(
            pop3(),
            connected({backend(kDovecotGreeting), client("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\nSTAT\r\n"),
                       backend("+OK Logged in.\r\n")}));
        CHECK(t.to_backend() == "AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n");
        CHECK(t.raw_to_backend == "STAT\r\n");
    }
}

TEST_CASE("pop3: STLS is answered locally, after replies still owed") {
    const auto t = check_splits(
        pop3(), connected({backend(kCourierGreeting), client("CAPA\r\nstls\r\nUSER joe\r\n"),
                           backend(kCourierCapa), backend("+OK\r\n")}));
    CHECK(t.to_backend() == "CAPA\r\nUSER joe\r\n");
    CHECK(t.to_client() == std::string(kCourierGreeting) + std::string(kCourierCapaFiltered) +
                               "-ERR TLS is already active\r\n+OK\r\n");
}

TEST_CASE("pop3: -ERR greeting is relayed and closes as backend unreachable") {
    const auto t = check_splits(
        pop3(), connected({backend("-ERR [SYS/TEMP] Maximum number of connections reached\r\n")}));
    CHECK(t.actions == std::vector<std::string>{
                           "connect",
                           "to_client:-ERR [SYS/TEMP] Maximum number of connections reached\r\n",
                           "close:backend_unreachable"});
}

TEST_CASE("pop3: backend failure sends -ERR [SYS/TEMP] and closes") {
    const auto t = check_splits(pop3(), {event(Event::TlsReady), event(Event::BackendFailed)});
    CHECK(t.actions ==
          std::vector<std::string>{
              "connect",
              "to_client:-ERR [SYS/TEMP] Backend server unavailable, try again later\r\n",
              "close:backend_unreachable"});
}

TEST_CASE("pop3: lines over the limits close the session") {
    MachineSettings s = pop3();
    s.max_line = 16;
    s.max_backend_line = 64;
    const auto fits = check_splits(
        s, connected({backend(kDovecotGreeting), client("USER 012345678\r\n")}));  // 16 bytes
    CHECK(fits.to_backend() == "USER 012345678\r\n");
    const auto over =
        check_splits(s, connected({backend(kDovecotGreeting), client("USER 0123456789\r\n")}));
    CHECK(over.actions.back() == "close:line_too_long");
    CHECK(over.to_client().ends_with("-ERR Line too long\r\n"));
    CHECK(over.to_backend().empty());
    const auto backend_over = check_splits(s, connected({backend("+OK " + std::string(80, 'x'))}));
    CHECK(backend_over.actions.back() == "close:protocol_error");
}

TEST_CASE("pop3: a NUL byte in a command closes the session") {
    const auto t = check_splits(
        pop3(), connected({backend(kDovecotGreeting), client(std::string("STLS\0\r\n", 7))}));
    CHECK(t.actions.back() == "close:protocol_error");
    CHECK(t.to_client().ends_with("-ERR NUL byte in command\r\n"));
    CHECK(t.to_backend().empty());
}

TEST_CASE("pop3: QUIT is relayed and its +OK closes as client quit") {
    const auto t = check_splits(pop3(), connected({backend(kCourierGreeting), client("QUIT\r\n"),
                                                   backend("+OK Bye-bye.\r\n")}));
    CHECK(t.to_backend() == "QUIT\r\n");
    CHECK(t.actions.back() == "close:client_quit");
}

}  // namespace
}  // namespace postern::protocols
