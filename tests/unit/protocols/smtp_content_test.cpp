// The DATA content scanner (protocols/smtp_content.hpp): what the backend gets for each way a
// client may end lines, cut at every offset, so a terminator split across reads is still seen.

#include "protocols/smtp_content.hpp"

#include "tests/unit/protocols/dialogue.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace postern::protocols {
namespace {

using smtp_content::DataContent;

struct Seen {
    std::string forwarded;
    std::size_t consumed = 0;
    bool done = false;
};

Seen feed(const std::vector<std::string_view>& chunks) {
    DataContent content;
    Seen seen;
    for (std::string_view chunk : chunks) {
        while (!chunk.empty() && !content.done()) {
            const auto step = content.next(chunk);
            REQUIRE(step.forward <= step.consumed);
            REQUIRE(step.consumed <= chunk.size());
            REQUIRE((step.consumed > 0 || !step.append.empty()));
            seen.forwarded.append(chunk.substr(0, step.forward)).append(step.append);
            seen.consumed += step.consumed;
            chunk.remove_prefix(step.consumed);
        }
    }
    seen.done = content.done();
    return seen;
}

struct Row {
    std::string_view sent;
    std::string_view forwarded;  // what the backend gets
    bool done;
    std::size_t consumed;
};

TEST_CASE("smtp content: only CRLF.CRLF ends it; bare LF becomes CRLF, other dot lines stuffed") {
    const std::vector<Row> rows{
        {".\r\n", ".\r\n", true, 3},
        {"a\r\n.\r\nQUIT\r\n", "a\r\n.\r\n", true, 6},
        {"\r\n..\r\n.\r\n", "\r\n..\r\n.\r\n", true, 9},
        // Postfix 3.7's lenient ends, and the smuggling after them: content, to every backend.
        {"x\n.\nSTARTTLS\r\n", "x\r\n..\r\nSTARTTLS\r\n", false, 14},
        {"x\n.\r\nRSET\r\n", "x\r\n..\r\nRSET\r\n", false, 11},
        {"x\r\n.\nRSET\r\n", "x\r\n..\r\nRSET\r\n", false, 11},
        {".\n", "..\r\n", false, 2},
        {"\n.\n", "\r\n..\r\n", false, 3},
        // A stuffed dot line that ended in CRLF: the next "." line ends it.
        {"x\n.\r\n.\r\n", "x\r\n..\r\n.\r\n", true, 8},
        // Bare CR is content, as Postfix keeps it; lines starting with a dot are as sent.
        {"a\r.\r\n", "a\r.\r\n", false, 5},
        {".\r.\r\n", ".\r.\r\n", false, 5},
        {".x\r\n..\r\n", ".x\r\n..\r\n", false, 8},
        {"\r\r\n.\r\n", "\r\r\n.\r\n", true, 6},
        {"\n\n\r\n", "\r\n\r\n\r\n", false, 4},
        {"no end", "no end", false, 6},
    };
    for (const Row& row : rows) {
        CAPTURE(test::escape(row.sent));
        const Seen whole = feed({row.sent});
        CHECK(test::escape(whole.forwarded) == test::escape(row.forwarded));
        CHECK(whole.done == row.done);
        CHECK(whole.consumed == row.consumed);
        std::vector<std::string_view> bytes;
        for (std::size_t i = 0; i < row.sent.size(); ++i) {
            bytes.push_back(row.sent.substr(i, 1));
        }
        const Seen bytewise = feed(bytes);
        CHECK(test::escape(bytewise.forwarded) == test::escape(row.forwarded));
        CHECK(bytewise.consumed == row.consumed);
        for (std::size_t cut = 1; cut < row.sent.size(); ++cut) {
            CAPTURE(cut);
            const Seen split = feed({row.sent.substr(0, cut), row.sent.substr(cut)});
            CHECK(test::escape(split.forwarded) == test::escape(row.forwarded));
            CHECK(split.consumed == row.consumed);
        }
    }
}

TEST_CASE("smtp content: CRLF lines go on in one step, whatever their number") {
    const std::string text = "Subject: x\r\n\r\nline\r\nline\r\n";
    DataContent content;
    const auto step = content.next(text);
    CHECK(step.consumed == text.size());
    CHECK(step.forward == text.size());
    CHECK(step.append.empty());
}

}  // namespace
}  // namespace postern::protocols
