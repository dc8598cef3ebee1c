// Capability filters, text helpers and the line reader: the pieces every machine relies on.

#include "protocols/capabilities.hpp"

#include "protocols/line_reader.hpp"
#include "protocols/text.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

namespace postern::protocols {
namespace {

using capabilities::filter_imap_line;
using capabilities::filter_pop3_greeting;
using capabilities::is_identity_command;
using capabilities::is_pop3_withheld;
using capabilities::is_smtp_withheld;
using capabilities::pop3_greeting_offers_xclient;
using capabilities::remove_tokens;
using capabilities::smtp_advertisable;

TEST_CASE("capabilities: remove_tokens drops whole tokens in any case, keeps the rest") {
    struct Row {
        std::string_view list;
        std::optional<std::string> expected;
    };
    const std::vector<Row> rows = {
        {"IMAP4rev1 STARTTLS AUTH=PLAIN", "IMAP4rev1 AUTH=PLAIN"},
        {"STARTTLS IMAP4rev1", "IMAP4rev1"},
        {"IMAP4rev1 starttls", "IMAP4rev1"},
        {"IMAP4rev1 LoginDisabled STARTTLS X", "IMAP4rev1 X"},
        {"STARTTLS", ""},
        {"IMAP4rev1 STARTTLSX XSTARTTLS AUTH=STARTTLS", std::nullopt},
        {"IMAP4rev1", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.list);
        CHECK(remove_tokens(row.list, "STARTTLS", "LOGINDISABLED") == row.expected);
    }
}

TEST_CASE("capabilities: IMAP lines are rewritten only in the capability places") {
    struct Row {
        std::string_view line;
        std::optional<std::string> expected;
    };
    const std::vector<Row> rows = {
        {"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n", "* CAPABILITY IMAP4rev1\r\n"},
        {"* capability IMAP4rev1 starttls\n", "* capability IMAP4rev1\n"},
        {"* CAPABILITY STARTTLS\r\n", "* CAPABILITY\r\n"},
        {"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n", "* OK [CAPABILITY IMAP4rev1] ready\r\n"},
        {"* PREAUTH [CAPABILITY STARTTLS IMAP4rev1] hi\r\n",
         "* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n"},
        {"a1 OK [CAPABILITY IMAP4rev1 STARTTLS] Logged in\r\n",
         "a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"},
        {"* OK [CAPABILITY STARTTLS] x\r\n", "* OK [CAPABILITY] x\r\n"},
        // Not a capability place: left alone.
        {"* OK ready, [CAPABILITY STARTTLS] later\r\n", std::nullopt},
        {"a1 CAPABILITY STARTTLS\r\n", std::nullopt},
        {"* 1 FETCH (BODY[] \"* CAPABILITY STARTTLS\")\r\n", std::nullopt},
        {"* OK [CAPABILITY IMAP4rev1 STARTTLS\r\n", std::nullopt},  // no ']'
        {"* OK [ALERT] STARTTLS\r\n", std::nullopt},
        {"+ STARTTLS\r\n", std::nullopt},
        {"*\r\n", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        CHECK(filter_imap_line(row.line) == row.expected);
    }
}

TEST_CASE("capabilities: a plaintext IMAP client is offered no login, and told so") {
    struct Row {
        std::string_view line;
        std::optional<std::string> expected;
    };
    const std::vector<Row> rows = {
        {"* CAPABILITY IMAP4rev1 SASL-IR STARTTLS AUTH=PLAIN auth=login\r\n",
         "* CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED\r\n"},
        {"* CAPABILITY IMAP4rev1 LOGINDISABLED STARTTLS\r\n",
         "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n"},
        {"* CAPABILITY IMAP4rev1\n", "* CAPABILITY IMAP4rev1 LOGINDISABLED\n"},
        {"* CAPABILITY AUTH=PLAIN\r\n", "* CAPABILITY LOGINDISABLED\r\n"},
        {"a1 OK [CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS] Listed\r\n",
         "a1 OK [CAPABILITY IMAP4rev1 LOGINDISABLED] Listed\r\n"},
        {"* OK [CAPABILITY IMAP4rev1] ready\r\n",
         "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n"},
        // AUTH without "=" is not a mechanism; XAUTH=... is not AUTH=.
        {"* CAPABILITY AUTH XAUTH=X\r\n", "* CAPABILITY AUTH XAUTH=X LOGINDISABLED\r\n"},
        {"* OK [ALERT] AUTH=PLAIN\r\n", std::nullopt},
        {"+ AUTH=PLAIN\r\n", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        CHECK(filter_imap_line(row.line, capabilities::ImapReader::Plaintext) == row.expected);
    }
}

TEST_CASE("capabilities: POP3 STLS and SMTP STARTTLS lines are recognised whole") {
    CHECK(is_pop3_withheld("STLS\r\n", false));
    CHECK(is_pop3_withheld("stls\n", false));
    CHECK_FALSE(is_pop3_withheld("STLSX\r\n", false));
    CHECK_FALSE(is_pop3_withheld("SASL STLS\r\n", false));
    CHECK_FALSE(is_pop3_withheld("..STLS\r\n", false));

    CHECK(is_smtp_withheld("250-STARTTLS\r\n", false));
    CHECK(is_smtp_withheld("250 starttls\r\n", false));
    CHECK_FALSE(is_smtp_withheld("250-STARTTLSX\r\n", false));
    CHECK_FALSE(is_smtp_withheld("250-AUTH STARTTLS\r\n", false));
    CHECK_FALSE(is_smtp_withheld("250\r\n", false));
}

TEST_CASE("capabilities: the client-identity offers are withheld, the commands refused") {
    CHECK(is_smtp_withheld("250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN\r\n", false));
    CHECK(is_smtp_withheld("250-xforward NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n", false));
    CHECK(is_smtp_withheld("250 XCLIENT\r\n", false));
    CHECK_FALSE(is_smtp_withheld("250-XCLIENTS\r\n", false));
    CHECK_FALSE(is_smtp_withheld("250-X-XCLIENT\r\n", false));
    CHECK_FALSE(is_smtp_withheld("250-AUTH XCLIENT\r\n", false));
    CHECK(is_pop3_withheld("XCLIENT\r\n", false));
    CHECK(is_pop3_withheld("XForward ADDR\r\n", false));
    CHECK_FALSE(is_pop3_withheld("SASL XCLIENT\r\n", false));

    for (const std::string_view verb : {"XCLIENT", "xclient", "XForward", "XOIP", "xoip"}) {
        CAPTURE(verb);
        CHECK(is_identity_command(verb));
    }
    for (const std::string_view verb : {"XCLIENTX", "XCLIEN", "", "EHLO", "X"}) {
        CAPTURE(verb);
        CHECK_FALSE(is_identity_command(verb));
    }
}

TEST_CASE("capabilities: postern repeats the backend's EHLO extensions but never these") {
    CHECK(smtp_advertisable("PIPELINING"));
    CHECK_FALSE(smtp_advertisable("AUTH PLAIN"));
    CHECK_FALSE(smtp_advertisable("auth=PLAIN"));
    CHECK(smtp_advertisable("AUTHX"));
    CHECK_FALSE(smtp_advertisable("STARTTLS"));
    CHECK_FALSE(smtp_advertisable("XCLIENT NAME ADDR PROTO HELO"));
    CHECK_FALSE(smtp_advertisable("xforward NAME ADDR"));
    CHECK_FALSE(smtp_advertisable(""));
    CHECK_FALSE(smtp_advertisable(" SIZE"));
    CHECK_FALSE(smtp_advertisable("X\r\n250 INJECTED"));
    CHECK_FALSE(smtp_advertisable(std::string(507, 'X')));
    CHECK(smtp_advertisable(std::string(506, 'X')));
}

TEST_CASE("capabilities: credentials are not offered to a client not on TLS") {
    for (const std::string_view line :
         {"250-AUTH PLAIN LOGIN\r\n", "250 auth=PLAIN\r\n", "250-AUTH\r\n", "250 AUTH= LOGIN\n"}) {
        CAPTURE(line);
        CHECK(is_smtp_withheld(line, true));
        CHECK_FALSE(is_smtp_withheld(line, false));
    }
    for (const std::string_view line :
         {"250-AUTHX\r\n", "250-X-AUTH PLAIN\r\n", "250-SIZE AUTH\r\n", "250\r\n", "250-\r\n"}) {
        CAPTURE(line);
        CHECK_FALSE(is_smtp_withheld(line, true));
    }
    CHECK(is_smtp_withheld("250-STARTTLS\r\n", true));

    for (const std::string_view line : {"USER\r\n", "sasl PLAIN LOGIN\r\n", "SASL\n"}) {
        CAPTURE(line);
        CHECK(is_pop3_withheld(line, true));
        CHECK_FALSE(is_pop3_withheld(line, false));
    }
    CHECK_FALSE(is_pop3_withheld("USERS\r\n", true));
    CHECK_FALSE(is_pop3_withheld("X-SASL\r\n", true));
    CHECK(is_pop3_withheld("STLS\r\n", true));
}

TEST_CASE("capabilities: POP3 greeting loses Dovecot's [XCLIENT] code, and only that") {
    struct Row {
        std::string_view line;
        std::optional<std::string> expected;
    };
    const std::vector<Row> rows = {
        {"+OK [XCLIENT] Dovecot ready.\r\n", "+OK Dovecot ready.\r\n"},
        {"+OK [xclient] Dovecot ready. <1.2@host>\r\n", "+OK Dovecot ready. <1.2@host>\r\n"},
        {"+OK [XCLIENT]\r\n", "+OK\r\n"},
        {"+ok [XCLIENT] x\n", "+ok x\n"},
        {"+OK Dovecot ready.\r\n", std::nullopt},
        {"+OK [XCLIENTX] ready\r\n", std::nullopt},
        {"+OK [XCLIENT]x\r\n", std::nullopt},
        {"+OK ready [XCLIENT]\r\n", std::nullopt},
        {"-ERR [XCLIENT] no\r\n", std::nullopt},
        {"+OK\r\n", std::nullopt},
    };
    for (const auto& row : rows) {
        CAPTURE(row.line);
        CHECK(filter_pop3_greeting(row.line) == row.expected);
        CHECK(pop3_greeting_offers_xclient(row.line) == row.expected.has_value());
    }
}

TEST_CASE("capabilities: parse_count takes digits only and refuses overflow") {
    CHECK(text::parse_count("0", text::kMaxCount) == 0U);
    CHECK(text::parse_count("007", text::kMaxCount) == 7U);
    CHECK(text::parse_count("4294967295", text::kMaxCount) == 4294967295U);
    CHECK_FALSE(text::parse_count("4294967296", text::kMaxCount));
    CHECK_FALSE(text::parse_count("99999999999999999999999999", text::kMaxCount));
    CHECK_FALSE(text::parse_count("18446744073709551616", UINT64_MAX));
    CHECK(text::parse_count("18446744073709551615", UINT64_MAX) == UINT64_MAX);
    CHECK_FALSE(text::parse_count("", text::kMaxCount));
    CHECK_FALSE(text::parse_count("+1", text::kMaxCount));
    CHECK_FALSE(text::parse_count("1 ", text::kMaxCount));
    CHECK_FALSE(text::parse_count("12", 9));
}

TEST_CASE("capabilities: split_word and strip_eol see what lenient backends see") {
    CHECK(text::split_word("STARTTLS\t\r\n").first == "STARTTLS");
    CHECK(text::split_word("  a1 LOGIN x").first == "a1");
    CHECK(text::split_word("a1 LOGIN x").rest == "LOGIN x");
    CHECK(text::split_word("").first.empty());
    CHECK(text::strip_eol("a\r\n") == "a");
    CHECK(text::strip_eol("a\n") == "a");
    CHECK(text::strip_eol("a\r") == "a\r");
    CHECK(text::eol_of("a\r\n") == "\r\n");
}

TEST_CASE("capabilities: line_reader finds lines, waits, and refuses over-long ones") {
    LineReader reader;
    CHECK(reader.next("abc", 8).status == LineReader::Status::NeedMore);
    const auto line = reader.next("abc\r\nrest", 8);
    CHECK(line.status == LineReader::Status::Line);
    CHECK(line.line == "abc\r\n");
    CHECK(reader.next("1234567\n", 8).line == "1234567\n");  // exactly the limit
    CHECK(reader.next("12345678\n", 8).status == LineReader::Status::TooLong);
    CHECK(reader.next("bare\nx", 8).line == "bare\n");
}

TEST_CASE("capabilities: line_reader resumes its scan where it stopped") {
    // White-box: the contract says the re-offered buffer starts with the same bytes, so the
    // reader does not look at them again. Breaking the contract on purpose shows it: the LF
    // at offset 2 lies in the part already scanned and is not seen.
    LineReader reader;
    CHECK(reader.next("abcd", 100).status == LineReader::Status::NeedMore);
    CHECK(reader.next("ab\ndefg\n", 100).line == "ab\ndefg\n");

    // unread(): the line stays at the front and is found again at once.
    const auto first = reader.next("xxxx\nmore", 100);
    REQUIRE(first.status == LineReader::Status::Line);
    reader.unread(first.line.size());
    CHECK(reader.next("xxxx\nmore", 100).line == "xxxx\n");
}

}  // namespace
}  // namespace postern::protocols
