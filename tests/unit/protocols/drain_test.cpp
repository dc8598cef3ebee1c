// The machines while postern drains: Machine::between_commands() tells the session when a
// quiet session may be ended politely (proxy/session_drain.cpp), and the goodbyes it sends.
// Every dialogue is split at every byte offset (dialogue.hpp).

#include "protocols/machine.hpp"
#include "protocols/replies.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

namespace postern::protocols {
namespace {

using test::backend;
using test::check_splits;
using test::client;
using test::connected;
using test::settings_for;

constexpr std::string_view kSmtpGreeting = "220 mx.test ESMTP Postfix\r\n";
constexpr std::string_view kSmtpShutdown = "421 4.3.2 mx.test Service shutting down\r\n";
constexpr std::string_view kImapGreeting = "* OK Dovecot ready.\r\n";
constexpr std::string_view kImapShutdown = "* BYE [UNAVAILABLE] mx.test shutting down\r\n";
constexpr std::string_view kPop3Greeting = "+OK Dovecot ready.\r\n";

TEST_CASE("drain: the goodbyes name the host") {
    CHECK(replies::drain_goodbye(Protocol::Smtp, "") == "421 4.3.2 Service shutting down\r\n");
    CHECK(replies::drain_goodbye(Protocol::Smtp, "mx.test") == kSmtpShutdown);
    CHECK(replies::drain_goodbye(Protocol::Imap, "mx.test") == kImapShutdown);
    CHECK(replies::drain_goodbye(Protocol::Pop3, "mx.test").empty());  // no unsolicited reply
}

TEST_CASE("drain: smtp between commands once each reply is in") {
    const auto after_ehlo = check_splits(
        settings_for(Protocol::Smtp),
        connected({backend(kSmtpGreeting), client("EHLO c\r\n"), backend("250 mx.test\r\n")}));
    CHECK(after_ehlo.between_commands);
    const auto after_message = check_splits(
        settings_for(Protocol::Smtp),
        connected({backend(kSmtpGreeting),
                   client("MAIL FROM:<a@c.test>\r\nRCPT TO:<b@a.test>\r\n"
                          "DATA\r\n"),
                   backend("250 ok\r\n250 ok\r\n354 go\r\n"),
                   client("Subject: x\r\n\r\nbody\r\n.\r\n"), backend("250 2.0.0 queued\r\n")}));
    CHECK(after_message.between_commands);
}

TEST_CASE("drain: smtp is not between commands inside DATA or with a reply owed") {
    const auto in_data = check_splits(settings_for(Protocol::Smtp),
                                      connected({backend(kSmtpGreeting), client("DATA\r\n"),
                                                 backend("354 go\r\n"), client("line\r\n")}));
    CHECK_FALSE(in_data.between_commands);
    const auto owed = check_splits(settings_for(Protocol::Smtp),
                                   connected({backend(kSmtpGreeting), client("NOOP\r\n")}));
    CHECK_FALSE(owed.between_commands);
}

TEST_CASE("drain: imap and pop3 between commands only when every command is answered") {
    const auto imap_owed = check_splits(settings_for(Protocol::Imap),
                                        connected({backend(kImapGreeting), client("a NOOP\r\n")}));
    CHECK_FALSE(imap_owed.between_commands);
    const auto imap_quiet = check_splits(
        settings_for(Protocol::Imap),
        connected({backend(kImapGreeting), client("a NOOP\r\n"), backend("a OK done\r\n")}));
    CHECK(imap_quiet.between_commands);
    const auto pop3_owed = check_splits(settings_for(Protocol::Pop3),
                                        connected({backend(kPop3Greeting), client("USER u\r\n")}));
    CHECK_FALSE(pop3_owed.between_commands);
    const auto pop3_quiet =
        check_splits(settings_for(Protocol::Pop3),
                     connected({backend(kPop3Greeting), client("USER u\r\n"), backend("+OK\r\n")}));
    CHECK(pop3_quiet.between_commands);
}

}  // namespace
}  // namespace postern::protocols
