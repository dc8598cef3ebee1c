// No spoofing, IMAP: a client's ID loses the fields only a trusted proxy may send (Dovecot's
// x-originating-ip and friends) before it reaches the backend; the rest passes byte for byte.
// An ID postern cannot read, or one with literals, is answered BAD and never forwarded. The
// filter on its own, then whole dialogues split at every byte offset (dialogue.hpp).

#include "protocols/imap_id.hpp"

#include "protocols/machine.hpp"
#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace postern::protocols {
namespace {

using imap_id::filter_command;
using imap_id::Filtered;
using imap_id::is_forwarding_field;
using test::accepted;
using test::backend;
using test::cat;
using test::check_splits;
using test::client;
using test::connected;
using test::event;

constexpr std::string_view kGreeting = "* OK [CAPABILITY IMAP4rev1 ID LITERAL+] Dovecot ready.\r\n";
constexpr std::string_view kInvalid = " BAD Invalid ID parameters\r\n";
constexpr std::string_view kLiteral = " BAD Literals in ID are not supported\r\n";

TEST_CASE("imap id: the forwarding fields are known by name, in any case") {
    for (const std::string_view name :
         {"x-originating-ip", "X-Originating-Port", "x-originating-", "x-originating-anything",
          "x-connected-ip", "X-CONNECTED-PORT", "x-connected-name", "x-proxy-ttl", "X-Session-Id",
          "x-session-ext-id", "x-forward-", "x-forward-user", "x-client-transport",
          "x-multiplex"}) {
        CAPTURE(name);
        CHECK(is_forwarding_field(name));
    }
    for (const std::string_view name : {"name", "version", "x-originating", "x-proxy-ttl2",
                                        "x-session-idx", "xx-originating-ip", "", "x-forward"}) {
        CAPTURE(name);
        CHECK_FALSE(is_forwarding_field(name));
    }
}

TEST_CASE("imap id: filter_command removes forwarding pairs and keeps the rest as sent") {
    using V = Filtered::Verdict;
    struct Row {
        std::string_view line;
        V verdict;
        std::string_view rewritten = {};
    };
    const std::vector<Row> rows = {
        {"a1 ID NIL\r\n", V::Unchanged},
        {"a1 id nil\r\n", V::Unchanged},
        {"a1 ID ()\r\n", V::Unchanged},
        {"a1 ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n", V::Unchanged},
        {"a1  ID  ( \"name\"  \"x\" )  \n", V::Unchanged},
        {"a1 ID (\"name\" \"Mail\" \"X-Originating-IP\" \"203.0.113.9\" \"version\" \"1\")\r\n",
         V::Rewritten, "a1 ID (\"name\" \"Mail\" \"version\" \"1\")\r\n"},
        {"a1 Id (\"x-originating-ip\" \"203.0.113.9\" \"x-originating-port\" \"1\")\n",
         V::Rewritten, "a1 Id NIL\n"},
        // escapes: the key is compared decoded; a kept pair keeps its escapes
        {"t ID (\"na\\\"me\" \"a\\\\b\" \"x-forward-\\\\\" \"v\" \"x-session-id\" NIL)\r\n",
         V::Rewritten, "t ID (\"na\\\"me\" \"a\\\\b\")\r\n"},
        // 8-bit text passes as it is (RFC 9051 quoted strings may carry UTF-8)
        {"t ID (\"x-proxy-ttl\" \"9\" \"name\" \"M\xc3\xa9l\")\r\n", V::Rewritten,
         "t ID (\"name\" \"M\xc3\xa9l\")\r\n"},
        {"t ID (\"name\"   \"x\" \"x-connected-ip\" \"::1\")\r\n", V::Rewritten,
         "t ID (\"name\"   \"x\")\r\n"},
        // what cannot be read, so cannot be cleared
        {"a1 ID\r\n", V::Invalid},
        {"a1 ID \r\n", V::Invalid},
        {"a1 ID foo\r\n", V::Invalid},
        {"a1 ID NILS\r\n", V::Invalid},
        {"a1 ID NIL x\r\n", V::Invalid},
        {"a1 ID (\"name\")\r\n", V::Invalid},
        {"a1 ID (\"name\" \"x\"\r\n", V::Invalid},
        {"a1 ID (\"name\" \"x)\r\n", V::Invalid},
        {"a1 ID (name \"x\")\r\n", V::Invalid},
        {"a1 ID (\"name\" x)\r\n", V::Invalid},
        {"a1 ID (\"name\"\"x\")\r\n", V::Invalid},
        {"a1 ID (\"a\" \"b\"\"c\" \"d\")\r\n", V::Invalid},
        {"a1 ID (NIL \"x\")\r\n", V::Invalid},
        {"a1 ID (\"x\\a\" \"y\")\r\n", V::Invalid},
        {"a1 ID ((\"x-originating-ip\" \"1\"))\r\n", V::Invalid},
        {"a1 ID (\"name\" \"x\") x\r\n", V::Invalid},
        {"a1 ID\t(\"x-originating-ip\" \"1\")\r\n", V::Invalid},
        {"a1 ID (\"x-originating-ip\"\t\"1\")\r\n", V::Invalid},
        {"a1 ID (\"x-originating-ip\" \"1\r\")\r\n", V::Invalid},
        {"a1\tID NIL\r\n", V::Invalid},
        {" a1 ID NIL\r\n", V::Invalid},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        const Filtered f = filter_command(row.line);
        CHECK(f.verdict == row.verdict);
        if (row.verdict == V::Rewritten) {
            CHECK(f.line == row.rewritten);
        }
    }
}

MachineSettings imap() {
    return test::settings_for(Protocol::Imap);
}

TEST_CASE("imap id: the backend never sees a client's forwarding fields") {
    const auto t = check_splits(
        imap(),
        connected(
            {backend(kGreeting),
             client("a1 ID (\"name\" \"Thunderbird\" \"x-originating-ip\" \"203.0.113.9\" "
                    "\"X-Originating-Port\" \"4444\" \"version\" \"115.0\" "
                    "\"x-connected-ip\" \"192.0.2.1\" \"x-proxy-ttl\" \"5\" "
                    "\"x-forward-master\" \"admin\" \"x-session-id\" NIL)\r\n"),
             backend("* ID (\"name\" \"Dovecot\")\r\na1 OK ID completed.\r\n"),
             client("a2 ID (\"x-originating-ip\" \"203.0.113.9\")\r\na3 ID NIL\r\n"),
             backend("* ID NIL\r\na2 OK ID completed.\r\n* ID NIL\r\na3 OK ID completed.\r\n"),
             client("a4 LOGIN joe secret\r\n"), backend("a4 OK Logged in\r\n")}));
    CHECK(t.to_backend() ==
          "a1 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\r\na2 ID NIL\r\na3 ID NIL\r\n"
          "a4 LOGIN joe secret\r\n");
    CHECK(t.to_client() ==
          cat({kGreeting, "* ID (\"name\" \"Dovecot\")\r\na1 OK ID completed.\r\n",
               "* ID NIL\r\na2 OK ID completed.\r\n* ID NIL\r\na3 OK ID completed.\r\n",
               "a4 OK Logged in\r\n"}));
    CHECK(t.actions.back() == "passthrough");
}

TEST_CASE("imap id: one postern cannot read is answered BAD and counts as an error") {
    MachineSettings s = imap();
    s.max_errors = 3;
    const auto t = check_splits(
        s, connected({backend(kGreeting), client("a1 ID (x-originating-ip \"203.0.113.9\")\r\n"),
                      client("a2 NOOP\r\n"), backend("a2 OK NOOP completed\r\n"),
                      client("a3 ID\r\na4 ID (\"x-originating-ip\")\r\n(bad ID foo\r\n")}));
    CHECK(t.to_backend() == "a2 NOOP\r\n");
    CHECK(t.to_client() ==
          cat({kGreeting, "a1", kInvalid, "a2 OK NOOP completed\r\n", "a3", kInvalid, "a4",
               kInvalid, "* BAD Invalid tag\r\n", "* BYE Too many invalid commands\r\n"}));
    CHECK(t.actions.back() == "close:too_many_errors");
}

TEST_CASE("imap id: a tag postern would not echo gets an untagged BAD") {
    const auto t = check_splits(
        imap(), connected({backend(kGreeting), client("a\x0b"
                                                      "1 ID foo\r\nb\xc3\xa9 ID\r\n")}));
    CHECK(t.to_client() == cat({kGreeting, "* BAD Invalid tag\r\n* BAD Invalid tag\r\n"}));
    CHECK(t.to_backend().empty());
}

TEST_CASE("imap id: literals are refused, their bytes never forwarded nor read as commands") {
    const auto t = check_splits(
        imap(), connected({backend(kGreeting),
                           // synchronizing: the client waits for "+" and gets BAD instead
                           client("a1 ID (\"x-originating-ip\" {11}\r\n"),
                           // non-synchronizing: bytes follow at once, across two literals
                           client("a2 ID (\"x-originating-ip\" {13+}\r\n203.0.113.9\r\n \"name\" "
                                  "{25+}\r\n\r\na9 LOGIN admin secret\r\n)\r\n"),
                           // ending in a synchronizing literal after a non-synchronizing one
                           client("a3 ID (\"name\" {1+}\r\nx \"version\" {3}\r\n"),
                           client("a4 NOOP\r\n"), backend("a4 OK NOOP completed\r\n")}));
    CHECK(t.to_backend() == "a4 NOOP\r\n");
    CHECK(t.to_client() == cat({kGreeting, "a1", kLiteral, "a2", kLiteral, "a3", kLiteral,
                                "a4 OK NOOP completed\r\n"}));
    CHECK(t.state == "auth");
}

TEST_CASE("imap id: our BAD waits until a backend response being relayed is complete") {
    const auto t = check_splits(
        imap(), connected({backend(kGreeting), backend("* 1 FETCH (BODY[] {10}\r\n01234"),
                           client("a1 ID foo\r\n"), backend("56789)\r\n* OK still here\r\n")}));
    CHECK(t.to_client() == cat({kGreeting, "* 1 FETCH (BODY[] {10}\r\n0123456789)\r\n", "a1",
                                kInvalid, "* OK still here\r\n"}));
}

TEST_CASE("imap id: on the plaintext path the first command is filtered once the backend is up") {
    const auto t = check_splits(
        test::starttls_settings_for(Protocol::Imap, false),
        accepted({client("a1 ID (\"X-ORIGINATING-IP\" \"203.0.113.9\" \"name\" \"x\")\r\n"),
                  event(Event::BackendReady), backend(kGreeting)}));
    CHECK(t.to_backend() == "a1 ID (\"name\" \"x\")\r\n");
}

}  // namespace
}  // namespace postern::protocols
