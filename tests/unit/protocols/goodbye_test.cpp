#include "protocols/goodbye.hpp"

#include <doctest/doctest.h>

using postern::protocols::ends_with_goodbye;
using postern::protocols::Protocol;

TEST_CASE("goodbye: a tagged LOGOUT ends an IMAP stream, QUIT a POP3 or SMTP one") {
    CHECK(ends_with_goodbye(Protocol::Imap, "a5 FETCH 1 BODY[]\r\na6 logout\r\n"));
    CHECK(ends_with_goodbye(Protocol::Imap, "A1 LOGOUT\r\n"));
    CHECK(ends_with_goodbye(Protocol::Pop3, "RETR 1\r\nQUIT\r\n"));
    CHECK(ends_with_goodbye(Protocol::Smtp, "quit\r\n"));
}

TEST_CASE("goodbye: anything else is not a goodbye") {
    CHECK_FALSE(ends_with_goodbye(Protocol::Imap, "LOGOUT\r\n"));  // no tag
    CHECK_FALSE(ends_with_goodbye(Protocol::Imap, "a1 LOGOUT"));   // line not finished
    CHECK_FALSE(ends_with_goodbye(Protocol::Imap, "a1 NOOP\r\n"));
    CHECK_FALSE(ends_with_goodbye(Protocol::Pop3, "QUITX\r\n"));
    CHECK_FALSE(ends_with_goodbye(Protocol::Smtp, "DATA\r\n"));
    CHECK_FALSE(ends_with_goodbye(Protocol::Smtp, ""));
}
