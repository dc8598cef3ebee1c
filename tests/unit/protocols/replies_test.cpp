#include "protocols/replies.hpp"

#include "protocols/smtp_reply.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using postern::protocols::parse_smtp_line;
using postern::protocols::Protocol;
namespace replies = postern::protocols::replies;

namespace {

// Every reply the shared table holds, as a client of that protocol would read it.
void check_table(Protocol protocol, std::string_view hostname) {
    const replies::ProtocolReplies& table = replies::of(protocol);
    for (const replies::Canned& canned :
         {table.line_too_long, table.nul_byte, table.junk, table.too_many_errors,
          table.backend_unavailable, table.timeout}) {
        const std::string reply = canned.text(hostname);
        CAPTURE(reply);
        REQUIRE(reply.ends_with("\r\n"));
        const std::string_view line = std::string_view(reply).substr(0, reply.size() - 2);
        CHECK(line.find_first_of("\r\n") == std::string_view::npos);  // one line
        switch (protocol) {
            case Protocol::Imap:
                CHECK((line.starts_with("* BAD ") || line.starts_with("* BYE ")));
                break;
            case Protocol::Pop3:
                CHECK(line.starts_with("-ERR "));
                break;
            case Protocol::Smtp: {
                const auto parsed = parse_smtp_line(line);
                REQUIRE(parsed);
                CHECK(parsed->last);
                CHECK((parsed->code / 100 == 4 || parsed->code / 100 == 5));
                break;
            }
        }
    }
}

}  // namespace

TEST_CASE("replies: each protocol's table holds one-line errors in that protocol") {
    for (const Protocol protocol : postern::protocols::kProtocols) {
        CAPTURE(to_string(protocol));
        check_table(protocol, "mx.test");
        check_table(protocol, "");
    }
}

TEST_CASE("replies: only SMTP's 421 replies name the host, and only when there is one") {
    CHECK(replies::kSmtp.too_many_errors.text("mx.test") ==
          "421 4.7.0 mx.test Error: too many errors\r\n");
    CHECK(replies::kSmtp.too_many_errors.text("") == "421 4.7.0 Error: too many errors\r\n");
    CHECK(replies::kSmtp.line_too_long.text("mx.test") == replies::kSmtpLineTooLong);
    CHECK(replies::of(Protocol::Imap).backend_unavailable.text("mx.test") ==
          replies::kImapBackendUnavailable);
    CHECK(replies::of(Protocol::Pop3).too_many_errors.text("mx.test") ==
          replies::kPop3TooManyErrors);
}
