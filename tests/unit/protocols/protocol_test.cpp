#include "protocols/protocol.hpp"

#include <doctest/doctest.h>

using postern::protocols::Protocol;
using postern::protocols::protocol_named;
using postern::protocols::to_string;

TEST_CASE("protocol: every protocol's name reads back as that protocol") {
    for (const Protocol protocol : postern::protocols::kProtocols) {
        CAPTURE(to_string(protocol));
        CHECK(protocol_named(to_string(protocol)) == protocol);
    }
    CHECK(to_string(Protocol::Imap) == "imap");
    CHECK(to_string(Protocol::Pop3) == "pop3");
    CHECK(to_string(Protocol::Smtp) == "smtp");
}

TEST_CASE("protocol: names are matched ASCII case-insensitively, and only whole") {
    CHECK(protocol_named("SMTP") == Protocol::Smtp);
    CHECK(protocol_named("Pop3") == Protocol::Pop3);
    CHECK_FALSE(protocol_named("smtps").has_value());
    CHECK_FALSE(protocol_named(" imap").has_value());
    CHECK_FALSE(protocol_named("pop").has_value());
    CHECK_FALSE(protocol_named("").has_value());
}
