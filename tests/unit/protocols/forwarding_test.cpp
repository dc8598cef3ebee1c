// Forwarding the client's identity: the commands postern builds (forwarding.hpp), with the
// encodings each backend reads, and the close reason the session logs when a backend refuses.
// The dialogues are forwarding_{smtp,imap,pop3}_test.cpp's.

#include "protocols/forwarding.hpp"

#include "protocols/action.hpp"

#include <doctest/doctest.h>

#include <string>

namespace postern::protocols {
namespace {

using forwarding::imap_id;
using forwarding::pop3_xclient;
using forwarding::smtp_xclient;
using forwarding::xtext;

ClientIdentity v4() {
    return {"203.0.113.7", 40000, "192.0.2.1", 465};
}
ClientIdentity v6() {
    return {"2001:db8::7", 40000, "2001:db8::1", 993};
}

TEST_CASE("forwarding: xtext encodes '+', '=' and every byte outside '!'..'~' (RFC 3461 §4)") {
    CHECK(xtext("203.0.113.7") == "203.0.113.7");
    CHECK(xtext("2001:db8::1") == "2001:db8::1");
    CHECK(xtext("[UNAVAILABLE]") == "[UNAVAILABLE]");
    CHECK(xtext("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(xtext(std::string("\x00\x01\x7f\xff~!", 6)) == "+00+01+7F+FF~!");
    CHECK(xtext("\r\n") == "+0D+0A");
    CHECK(xtext("").empty());
}

TEST_CASE("forwarding: SMTP XCLIENT as Postfix reads it") {
    CHECK(smtp_xclient(v4()) == "XCLIENT ADDR=203.0.113.7 PORT=40000 NAME=[UNAVAILABLE]\r\n");
    CHECK(smtp_xclient(v6()) == "XCLIENT ADDR=IPV6:2001:db8::7 PORT=40000 NAME=[UNAVAILABLE]\r\n");
    CHECK(smtp_xclient({"::ffff:203.0.113.7", 1, "", 0}) ==
          "XCLIENT ADDR=IPV6:::ffff:203.0.113.7 PORT=1 NAME=[UNAVAILABLE]\r\n");
    CHECK(smtp_xclient({}) ==
          "XCLIENT ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] NAME=[UNAVAILABLE]\r\n");
    // Whatever the address holds, the command stays one line with one ADDR.
    CHECK(smtp_xclient({"1.2.3.4 NAME=x\r\nRSET", 25, "", 0}) ==
          "XCLIENT ADDR=1.2.3.4+20NAME+3Dx+0D+0ARSET PORT=25 NAME=[UNAVAILABLE]\r\n");
}

TEST_CASE("forwarding: POP3 XCLIENT as Dovecot reads it") {
    CHECK(pop3_xclient(v4()) ==
          "XCLIENT ADDR=203.0.113.7 PORT=40000 DESTADDR=192.0.2.1 DESTPORT=465\r\n");
    CHECK(pop3_xclient(v6()) ==
          "XCLIENT ADDR=2001:db8::7 PORT=40000 DESTADDR=2001:db8::1 DESTPORT=993\r\n");
    CHECK(pop3_xclient({"203.0.113.7", 0, "", 0}) == "XCLIENT ADDR=203.0.113.7\r\n");
    CHECK(pop3_xclient({"1.2.3.4 TTL=0", 1, "", 0}) == "XCLIENT ADDR=1.2.3.4+20TTL+3D0 PORT=1\r\n");
}

TEST_CASE("forwarding: IMAP ID as Dovecot reads it") {
    CHECK(imap_id(v4()) ==
          "postern ID (\"x-originating-ip\" \"203.0.113.7\" \"x-originating-port\" \"40000\" "
          "\"x-connected-ip\" \"192.0.2.1\" \"x-connected-port\" \"465\")\r\n");
    CHECK(imap_id(v6()) ==
          "postern ID (\"x-originating-ip\" \"2001:db8::7\" \"x-originating-port\" \"40000\" "
          "\"x-connected-ip\" \"2001:db8::1\" \"x-connected-port\" \"993\")\r\n");
    CHECK(imap_id({"203.0.113.7", 0, "", 0}) ==
          "postern ID (\"x-originating-ip\" \"203.0.113.7\")\r\n");
    CHECK(imap_id({}) == "postern ID NIL\r\n");
    CHECK(imap_id({"a\"b\\c\r\nd", 0, "", 0}) ==
          "postern ID (\"x-originating-ip\" \"a\\\"b\\\\cd\")\r\n");
}

TEST_CASE("forwarding: one command per protocol, and a close reason of its own") {
    CHECK(forwarding::command(Protocol::Smtp, v4()) == smtp_xclient(v4()));
    CHECK(forwarding::command(Protocol::Pop3, v4()) == pop3_xclient(v4()));
    CHECK(forwarding::command(Protocol::Imap, v4()) == imap_id(v4()));
    CHECK(to_string(CloseReason::ForwardingRefused) == "forwarding_refused");
}

}  // namespace
}  // namespace postern::protocols
