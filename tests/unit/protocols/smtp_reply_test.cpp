#include "protocols/smtp_reply.hpp"

#include <doctest/doctest.h>

#include <string_view>

using postern::protocols::parse_smtp_line;

TEST_CASE("smtp_reply: '-' continues a reply, SP or nothing after the code ends it") {
    auto l = parse_smtp_line("250-mx.example.net Hello");
    REQUIRE(l);
    CHECK(l->code == 250);
    CHECK_FALSE(l->last);
    CHECK(l->text == "mx.example.net Hello");
    l = parse_smtp_line("250-");  // an empty textstring is allowed on any line (RFC 5321 §4.2)
    REQUIRE(l);
    CHECK_FALSE(l->last);
    CHECK(l->text.empty());
    l = parse_smtp_line("554 5.7.1 Go away");
    REQUIRE(l);
    CHECK(l->code == 554);
    CHECK(l->last);
    CHECK(l->text == "5.7.1 Go away");
    l = parse_smtp_line("250 ");
    REQUIRE(l);
    CHECK(l->last);
    CHECK(l->text.empty());
    l = parse_smtp_line("999");
    REQUIRE(l);
    CHECK(l->code == 999);
    CHECK(l->last);
}

TEST_CASE("smtp_reply: the text is the rest of the line as written, never trimmed") {
    const auto l = parse_smtp_line("250-AUTH  PLAIN\tLOGIN ");
    REQUIRE(l);
    CHECK(l->text == "AUTH  PLAIN\tLOGIN ");
}

TEST_CASE("smtp_reply: anything but three digits and SP, '-' or the end is not a reply line") {
    for (const std::string_view line :
         {"", "2", "25", "25 ok", "2x0 ok", " 250 ok", "250+ok", "250\tok", "250_ok", "250\r",
          "-250 ok", "* OK IMAP4rev1", "+OK POP3", "abc-def"}) {
        CAPTURE(line);
        CHECK_FALSE(parse_smtp_line(line).has_value());
    }
}
