// The machines while postern drains (Event::Drain, Machine::between_commands()): what is under
// way goes on, the next command gets the shutdown reply in its turn, and a session before its
// dialogue with the backend is answered at once. Every dialogue is split at every byte offset
// (dialogue.hpp).

#include "protocols/machine.hpp"
#include "protocols/replies.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

namespace postern::protocols {
namespace {

using test::accepted;
using test::backend;
using test::check_splits;
using test::client;
using test::connected;
using test::event;
using test::settings_for;
using test::starttls_settings_for;

constexpr std::string_view kSmtpGreeting = "220 mx.test ESMTP Postfix\r\n";
constexpr std::string_view kSmtpShutdown = "421 4.3.2 mx.test Service shutting down\r\n";
constexpr std::string_view kImapGreeting = "* OK Dovecot ready.\r\n";
constexpr std::string_view kImapShutdown = "* BYE [UNAVAILABLE] mx.test shutting down\r\n";
constexpr std::string_view kPop3Greeting = "+OK Dovecot ready.\r\n";
constexpr std::string_view kPop3Shutdown = "-ERR [SYS/TEMP] mx.test shutting down\r\n";

TEST_CASE("drain: the shutdown replies and the goodbyes name the host") {
    CHECK(replies::shutdown_reply(Protocol::Smtp, "mx.test") == kSmtpShutdown);
    CHECK(replies::shutdown_reply(Protocol::Imap, "mx.test") == kImapShutdown);
    CHECK(replies::shutdown_reply(Protocol::Pop3, "mx.test") == kPop3Shutdown);
    CHECK(replies::shutdown_reply(Protocol::Smtp, "") == "421 4.3.2 Service shutting down\r\n");
    CHECK(replies::drain_goodbye(Protocol::Smtp, "mx.test") == kSmtpShutdown);
    CHECK(replies::drain_goodbye(Protocol::Imap, "mx.test") == kImapShutdown);
    CHECK(replies::drain_goodbye(Protocol::Pop3, "mx.test").empty());  // no unsolicited reply
}

TEST_CASE("drain: smtp between commands, a new command gets 421 and is not relayed") {
    const auto before = check_splits(
        settings_for(Protocol::Smtp),
        connected({backend(kSmtpGreeting), client("EHLO c\r\n"), backend("250 mx.test\r\n")}));
    CHECK(before.between_commands);
    const auto t = check_splits(
        settings_for(Protocol::Smtp),
        connected({backend(kSmtpGreeting), client("EHLO c\r\n"), backend("250 mx.test\r\n"),
                   event(Event::Drain), client("MAIL FROM:<a@c.test>\r\n")}));
    CHECK(t.to_client() ==
          std::string(kSmtpGreeting) + "250 mx.test\r\n" + std::string(kSmtpShutdown));
    CHECK(t.to_backend() == "EHLO c\r\n");
    CHECK(t.has("close:drained"));
}

TEST_CASE("drain: smtp message content in flight goes on, its reply first, then 421") {
    const auto t = check_splits(
        settings_for(Protocol::Smtp),
        connected({backend(kSmtpGreeting),
                   client("MAIL FROM:<a@c.test>\r\nRCPT TO:<b@a.test>\r\n"
                          "DATA\r\n"),
                   backend("250 ok\r\n250 ok\r\n354 go\r\n"), client("Subject: x\r\n\r\nfirst\r\n"),
                   event(Event::Drain), client("second\r\n.\r\nQUIT\r\n"),
                   backend("250 2.0.0 queued\r\n")}));
    CHECK(t.to_backend() ==
          "MAIL FROM:<a@c.test>\r\nRCPT TO:<b@a.test>\r\nDATA\r\nSubject: x\r\n\r\nfirst\r\n"
          "second\r\n.\r\n");
    CHECK(t.to_client() == std::string(kSmtpGreeting) + "250 ok\r\n250 ok\r\n354 go\r\n" +
                               "250 2.0.0 queued\r\n" + std::string(kSmtpShutdown));
    CHECK(t.has("close:drained"));
}

TEST_CASE("drain: smtp is not between commands inside DATA or with a reply owed") {
    const auto in_data =
        check_splits(settings_for(Protocol::Smtp),
                     connected({backend(kSmtpGreeting), client("DATA\r\n"), backend("354 go\r\n"),
                                client("line\r\n"), event(Event::Drain)}));
    CHECK_FALSE(in_data.between_commands);
    CHECK_FALSE(in_data.has("close:drained"));
    const auto owed = check_splits(settings_for(Protocol::Smtp),
                                   connected({backend(kSmtpGreeting), client("NOOP\r\n"),
                                              event(Event::Drain), client("RSET\r\n")}));
    CHECK_FALSE(owed.between_commands);
    CHECK(owed.to_backend() == "NOOP\r\n");  // RSET waits for the NOOP's reply, then gets 421
    CHECK(owed.client_pending == "RSET\r\n");
}

TEST_CASE("drain: imap before login, a command gets BYE; one outstanding is answered first") {
    const auto t = check_splits(
        settings_for(Protocol::Imap),
        connected({backend(kImapGreeting), client("a CAPABILITY\r\n"), event(Event::Drain),
                   client("b LOGIN u p\r\n"), backend("* CAPABILITY IMAP4rev1\r\na OK done\r\n")}));
    CHECK(t.to_backend() == "a CAPABILITY\r\n");
    CHECK(t.to_client() == std::string(kImapGreeting) + "* CAPABILITY IMAP4rev1\r\na OK done\r\n" +
                               std::string(kImapShutdown));
    CHECK(t.has("close:drained"));
    const auto quiet = check_splits(
        settings_for(Protocol::Imap),
        connected({backend(kImapGreeting), client("a NOOP\r\n"), backend("a OK done\r\n")}));
    CHECK(quiet.between_commands);
}

TEST_CASE("drain: pop3 between commands, a command gets -ERR") {
    const auto t =
        check_splits(settings_for(Protocol::Pop3),
                     connected({backend(kPop3Greeting), client("USER u\r\n"), backend("+OK\r\n"),
                                event(Event::Drain), client("PASS p\r\n")}));
    CHECK(t.to_backend() == "USER u\r\n");
    CHECK(t.to_client() == std::string(kPop3Greeting) + "+OK\r\n" + std::string(kPop3Shutdown));
    CHECK(t.has("close:drained"));
}

TEST_CASE("drain: before the backend, the shutdown reply at once") {
    SUBCASE("implicit TLS, connecting: the reply stands for the greeting") {
        const auto t = check_splits(settings_for(Protocol::Imap),
                                    {event(Event::TlsReady), event(Event::Drain)});
        CHECK(t.to_client() == kImapShutdown);
        CHECK(t.has("close:drained"));
    }
    SUBCASE("implicit TLS, the greeting not read yet") {
        const auto t = check_splits(settings_for(Protocol::Smtp),
                                    {event(Event::TlsReady), event(Event::BackendReady),
                                     event(Event::Drain), backend(kSmtpGreeting)});
        CHECK(t.to_client() == kSmtpShutdown);
    }
    SUBCASE("implicit TLS, handshake not done: at TlsReady, no backend") {
        const auto t = check_splits(settings_for(Protocol::Pop3),
                                    {event(Event::Drain), event(Event::TlsReady)});
        CHECK(t.to_client() == kPop3Shutdown);
        CHECK_FALSE(t.has("connect"));
    }
    SUBCASE("STARTTLS listener, postern's own dialogue") {
        const auto t = check_splits(starttls_settings_for(Protocol::Smtp),
                                    accepted({client("EHLO c\r\n"), event(Event::Drain)}));
        CHECK(t.to_client().ends_with(kSmtpShutdown));
        CHECK(t.has("close:drained"));
    }
    SUBCASE("STARTTLS listener, drained before it greets: no greeting") {
        const auto t = check_splits(starttls_settings_for(Protocol::Imap),
                                    {event(Event::Drain), event(Event::ClientConnected)});
        CHECK(t.to_client() == kImapShutdown);
    }
}

}  // namespace
}  // namespace postern::protocols
