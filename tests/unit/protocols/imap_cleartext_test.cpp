// IMAP on a STARTTLS listener with require_tls = false: a client that never upgrades is relayed
// to the backend in plaintext, but its credentials never are (issue 13). The backend cannot
// tell, since every connection comes from postern: LOGIN and AUTHENTICATE (SASL-IR and literals
// included) get NO [PRIVACYREQUIRED] before and after the backend is connected, and every
// capability list the plaintext client sees says LOGINDISABLED, without AUTH= or STARTTLS.
// After STARTTLS the backend's dialogue is relayed as usual. Every dialogue split at every byte
// offset (dialogue.hpp).

#include "protocols/machine.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace postern::protocols {
namespace {

using test::accepted;
using test::backend;
using test::cat;
using test::check_splits;
using test::client;
using test::event;

constexpr std::string_view kOurGreeting =
    "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] mx.test IMAP4 ready\r\n";
// Dovecot on loopback: postern's connections count as secure, so it offers AUTH= and no
// LOGINDISABLED, and would accept a plaintext login.
constexpr std::string_view kDovecotGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    "AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n";
constexpr std::string_view kPrivacy = " NO [PRIVACYREQUIRED] Use STARTTLS first\r\n";

MachineSettings plaintext_ok() {
    return test::starttls_settings_for(Protocol::Imap, false);
}

// The client went on in plaintext with ID, which only the backend answers.
test::Script relayed(const test::Script& rest) {
    test::Script script =
        accepted({client("a1 ID NIL\r\n"), event(Event::BackendReady), backend(kDovecotGreeting),
                  backend("* ID NIL\r\na1 OK ID completed.\r\n")});
    script.insert(script.end(), rest.begin(), rest.end());
    return script;
}

TEST_CASE("imap cleartext: LOGIN and AUTHENTICATE are refused before a backend is connected") {
    const auto t = check_splits(
        plaintext_ok(),
        accepted({client("a1 CAPABILITY\r\na2 LOGIN joe secret\r\na3 AUTHENTICATE PLAIN\r\n"
                         "a4 authenticate PLAIN AGpvZQBzZWNyZXQ=\r\na5 LOGIN {3}\r\n"),
                  client("a6 LOGOUT\r\n")}));
    CHECK(t.to_client() ==
          cat({kOurGreeting, "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n",
               "a1 OK CAPABILITY completed\r\n", "a2", kPrivacy, "a3", kPrivacy, "a4", kPrivacy,
               "a5", kPrivacy, "* BYE Logging out\r\na6 OK LOGOUT completed\r\n"}));
    CHECK_FALSE(t.has("connect"));
    CHECK(t.actions.back() == "close:client_quit");
}

TEST_CASE("imap cleartext: once relayed, credentials still never reach the backend") {
    const auto t =
        check_splits(plaintext_ok(),
                     relayed({client("a2 LOGIN joe secret\r\na3 AUTHENTICATE PLAIN\r\n"
                                     "a4 AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=\r\na5 LOGIN {3}\r\n"),
                              // LITERAL+ (the backend offers it): the literal's bytes follow at
                              // once and are dropped with the rest of the command.
                              client("a6 LOGIN {3+}\r\njoe {6+}\r\nsecret\r\na7 NOOP\r\n"),
                              backend("a7 OK NOOP completed.\r\n")}));
    CHECK(t.to_backend() == "a1 ID NIL\r\na7 NOOP\r\n");
    CHECK(t.to_client() ==
          cat({kOurGreeting, "* ID NIL\r\na1 OK ID completed.\r\n", "a2", kPrivacy, "a3", kPrivacy,
               "a4", kPrivacy, "a5", kPrivacy, "a6", kPrivacy, "a7 OK NOOP completed.\r\n"}));
    CHECK(t.state == "auth");
    CHECK_FALSE(t.has("passthrough"));
}

TEST_CASE("imap cleartext: the refusals count toward max_errors") {
    MachineSettings s = plaintext_ok();
    s.max_errors = 2;
    const auto t =
        check_splits(s, relayed({client("a2 LOGIN joe secret\r\na3 LOGIN joe secret\r\n")}));
    CHECK(t.to_backend() == "a1 ID NIL\r\n");
    CHECK(t.to_client().ends_with(cat({"a3", kPrivacy, "* BYE Too many invalid commands\r\n"})));
    CHECK(t.actions.back() == "close:too_many_errors");
}

TEST_CASE("imap cleartext: the backend's capabilities say LOGINDISABLED, no AUTH=, no STARTTLS") {
    const auto t = check_splits(
        plaintext_ok(),
        relayed(
            {client("a2 CAPABILITY\r\n"),
             backend("* CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ STARTTLS AUTH=PLAIN "
                     "AUTH=LOGIN\r\na2 OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Listed.\r\n"),
             client("a3 CAPABILITY\r\n"),
             backend("* CAPABILITY STARTTLS LOGINDISABLED\r\na3 OK Listed.\r\n"),
             client("a4 STARTTLS\r\n")}));
    CHECK(t.to_client() == cat({kOurGreeting, "* ID NIL\r\na1 OK ID completed.\r\n",
                                "* CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ LOGINDISABLED\r\n",
                                "a2 OK [CAPABILITY IMAP4rev1 LOGINDISABLED] Listed.\r\n",
                                "* CAPABILITY LOGINDISABLED\r\na3 OK Listed.\r\n",
                                // The backend has seen plaintext commands: too late to upgrade.
                                "a4 BAD TLS is not available now\r\n"}));
}

TEST_CASE("imap cleartext: after STARTTLS the backend's dialogue is relayed, login included") {
    const auto t = check_splits(
        plaintext_ok(),
        test::upgraded(kDovecotGreeting, {client("a1 STARTTLS\r\n")},
                       {client("a2 CAPABILITY\r\n"),
                        backend("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\na2 OK\r\n"),
                        client("a3 LOGIN joe secret\r\n"), backend("a3 OK Logged in\r\n")}));
    CHECK(t.actions == std::vector<std::string>{
                           cat({"to_client:", kOurGreeting, "a1 OK Begin TLS negotiation now\r\n"}),
                           "start_tls", "connect", "to_backend:a2 CAPABILITY\r\n",
                           "to_client:* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na2 OK\r\n",
                           "to_backend:a3 LOGIN joe secret\r\n", "to_client:a3 OK Logged in\r\n",
                           "passthrough"});
}

}  // namespace
}  // namespace postern::protocols
