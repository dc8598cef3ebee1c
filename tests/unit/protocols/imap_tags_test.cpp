// IMAP machine: a tagged completion answers the oldest outstanding command with that tag
// (RFC 9051 §2.2.2, §7.1), so a client that reuses a tag cannot make an earlier command's OK
// count as its LOGIN's; replies postern writes itself wait until the backend has answered an
// earlier command with the same tag, so the client reads them in order. Every dialogue split at
// every byte offset (dialogue.hpp).

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

constexpr std::string_view kGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n";
constexpr std::string_view kGreetingFiltered =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n";
constexpr std::string_view kNoopOk = "a OK NOOP completed.\r\n";
constexpr std::string_view kAuthFailed = "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n";

MachineSettings imap() {
    return test::settings_for(Protocol::Imap);
}

TEST_CASE("imap tags: the OK of an earlier command is not the LOGIN's") {
    const auto failed = check_splits(
        imap(), connected({backend(kGreeting), client("a NOOP\r\na LOGIN joe wrong\r\n"),
                           backend(kNoopOk), backend("* CAPABILITY IMAP4rev1 STARTTLS\r\n"),
                           backend(kAuthFailed), client("b STARTTLS\r\n")}));
    CHECK_FALSE(failed.has("passthrough"));
    CHECK(failed.to_backend() == "a NOOP\r\na LOGIN joe wrong\r\n");
    CHECK(failed.to_client() == cat({kGreetingFiltered, kNoopOk, "* CAPABILITY IMAP4rev1\r\n",
                                     kAuthFailed, "b BAD TLS is already active\r\n"}));
    CHECK(failed.state == "auth");

    const auto ok = check_splits(
        imap(),
        connected({backend(kGreeting), client("a NOOP\r\na LOGIN joe secret\r\n"), backend(kNoopOk),
                   backend("a OK [CAPABILITY IMAP4rev1 STARTTLS IDLE] "
                           "Logged in\r\n* 1 EXISTS\r\n")}));
    CHECK(ok.to_client() ==
          cat({kGreetingFiltered, kNoopOk, "a OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"}));
    CHECK(ok.actions.back() == "passthrough");
    CHECK(ok.raw_to_client == "* 1 EXISTS\r\n");
}

TEST_CASE("imap tags: CAPABILITY then LOGIN under one tag: the login's OK is still filtered") {
    const auto t = check_splits(
        imap(), connected({backend(kGreeting), client("a CAPABILITY\r\na LOGIN joe secret\r\n"),
                           backend("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n"
                                   "a OK Pre-login capabilities listed.\r\n"),
                           backend("a OK [CAPABILITY IMAP4rev1 STARTTLS] Logged in\r\n")}));
    CHECK(t.to_client() == cat({kGreetingFiltered, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n",
                                "a OK Pre-login capabilities listed.\r\n",
                                "a OK [CAPABILITY IMAP4rev1] Logged in\r\n"}));
    CHECK(t.actions.back() == "passthrough");
    CHECK(t.raw_to_client.empty());
}

TEST_CASE("imap tags: an earlier command's OK neither ends nor completes an AUTHENTICATE") {
    const auto t = check_splits(
        imap(), connected({backend(kGreeting), client("a NOOP\r\na AUTHENTICATE PLAIN\r\n"),
                           backend(kNoopOk), backend("+ \r\n"),
                           client("AGpvZQB3cm9uZw==\r\nb STARTTLS\r\n"), backend(kAuthFailed)}));
    CHECK_FALSE(t.has("passthrough"));
    CHECK(t.to_backend() == "a NOOP\r\na AUTHENTICATE PLAIN\r\nAGpvZQB3cm9uZw==\r\n");
    CHECK(t.to_client() == cat({kGreetingFiltered, kNoopOk, "+ \r\n", kAuthFailed,
                                "b BAD TLS is already active\r\n"}));
    CHECK(t.client_pending.empty());
}

TEST_CASE("imap tags: an earlier command's OK does not close for a LOGOUT") {
    const auto t = check_splits(
        imap(), connected({backend(kGreeting), client("a NOOP\r\na LOGOUT\r\n"), backend(kNoopOk),
                           backend("* BYE Logging out\r\na OK Logout completed.\r\n")}));
    CHECK(t.to_client() ==
          cat({kGreetingFiltered, kNoopOk, "* BYE Logging out\r\na OK Logout completed.\r\n"}));
    CHECK(t.actions.back() == "close:client_quit");
}

TEST_CASE("imap tags: an earlier command's OK is not the refusal of a literal") {
    // The client waits for "+" before its literal; a NOOP's OK under the same tag must not make
    // the literal's bytes a command line.
    const auto t = check_splits(
        imap(), connected({backend(kGreeting), client("a NOOP\r\na LOGIN {13}\r\n"),
                           backend(kNoopOk), backend("+ OK\r\n"),
                           client("a9 STARTTLS\r\n secret\r\n"), backend("a OK Logged in\r\n")}));
    CHECK(t.to_backend() == "a NOOP\r\na LOGIN {13}\r\na9 STARTTLS\r\n secret\r\n");
    CHECK(t.to_client() == cat({kGreetingFiltered, kNoopOk, "+ OK\r\na OK Logged in\r\n"}));
    CHECK(t.actions.back() == "passthrough");
}

TEST_CASE("imap tags: postern's own replies follow the backend's to an earlier same tag") {
    const auto starttls = check_splits(
        imap(), connected({backend(kGreeting), client("a NOOP\r\na STARTTLS\r\nb NOOP\r\n"),
                           backend(kNoopOk), backend("b OK NOOP completed.\r\n")}));
    CHECK(starttls.to_backend() == "a NOOP\r\nb NOOP\r\n");
    CHECK(starttls.to_client() == cat({kGreetingFiltered, kNoopOk,
                                       "a BAD TLS is already active\r\nb OK NOOP completed.\r\n"}));

    // Another tag is not held back: tags tell the replies apart.
    const auto other = check_splits(
        imap(),
        connected({backend(kGreeting), client("a NOOP\r\nb STARTTLS\r\n"), backend(kNoopOk)}));
    CHECK(other.to_client() ==
          cat({kGreetingFiltered, "b BAD TLS is already active\r\n", kNoopOk}));

    const auto id = check_splits(
        imap(),
        connected({backend(kGreeting), client("a NOOP\r\na ID (\"name\"\r\n"), backend(kNoopOk)}));
    CHECK(id.to_backend() == "a NOOP\r\n");
    CHECK(id.to_client() == cat({kGreetingFiltered, kNoopOk, "a BAD Invalid ID parameters\r\n"}));

    const auto id_ok = check_splits(
        imap(), connected({backend(kGreeting), client("a NOOP\r\na ID NIL\r\n"), backend(kNoopOk),
                           backend("* ID NIL\r\na OK ID completed.\r\n")}));
    CHECK(id_ok.to_backend() == "a NOOP\r\na ID NIL\r\n");
    CHECK(id_ok.to_client() ==
          cat({kGreetingFiltered, kNoopOk, "* ID NIL\r\na OK ID completed.\r\n"}));
}

TEST_CASE("imap tags: a full queue of outstanding commands holds the client back") {
    std::string many;
    for (int i = 0; i < 40; ++i) {
        many += "t" + std::to_string(i) + " NOOP\r\n";
    }
    const auto t = check_splits(imap(), connected({backend(kGreeting), client(many)}));
    const std::string sent = t.to_backend();
    CHECK(sent.size() < many.size());
    CHECK(many.starts_with(sent));
    CHECK(t.client_pending == many.substr(sent.size()));

    std::string answers;
    for (int i = 0; i < 40; ++i) {
        answers += "t" + std::to_string(i) + " OK\r\n";
    }
    const auto all =
        check_splits(imap(), connected({backend(kGreeting), client(many), backend(answers)}));
    CHECK(all.to_backend() == many);
    CHECK(all.client_pending.empty());
}

}  // namespace
}  // namespace postern::protocols
