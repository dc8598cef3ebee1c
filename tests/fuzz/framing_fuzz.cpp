// libFuzzer target for the line-level readers the protocol machines share, each with invariants
// of its own (the machine targets only see them through a whole dialogue):
//  - protocols/line_reader.hpp: byte 0 sets `max` (1..256), byte 1 the size of the chunks the
//    rest arrives in; lines are taken as a session takes them, each one looked at, unread and
//    found again first when its length is odd. Every answer must be what a fresh reader says of
//    the same buffer, and exact: Line is the buffer up to its first LF, at most `max` bytes;
//    NeedMore means no LF and fewer than `max` bytes; TooLong means no LF in the first `max`.
//  - then every line found (to TooLong or the end) goes through protocols/smtp_reply.hpp,
//    imap_syntax.hpp, imap_id.hpp and capabilities.hpp: an SMTP reply line is its code, separator
//    and text, nothing else; a literal is announced only by "{digits}" ("{digits+}" from a
//    client) at the end, and the client and backend readings agree but for "+"; a valid tag
//    holds no byte that could break a reply; an ID rewrite keeps the tag, verb and terminator,
//    is never longer than the line and is final (filtering it again changes nothing); a
//    capability rewrite keeps the terminator, shortens the line, leaves no STARTTLS or
//    LOGINDISABLED in the list it rewrote and is final; an SMTP extension postern may advertise
//    is never one it withholds, and a count parsed is the digits read.
// Invariants besides "no crash, out-of-bounds read or UB". Each line is copied into a buffer of
// its own size, so ASan sees any read past it.

#include "protocols/capabilities.hpp"
#include "protocols/imap_id.hpp"
#include "protocols/imap_syntax.hpp"
#include "protocols/line_reader.hpp"
#include "protocols/smtp_reply.hpp"
#include "protocols/text.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace p = postern::protocols;
using p::LineReader;

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(std::fprintf(stderr, "framing_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// What next() must answer for `buffer`, from first principles.
void check_answer(const LineReader::Result& r, std::string_view buffer, std::size_t max) {
    const std::size_t lf = buffer.find('\n');
    LineReader fresh;
    const LineReader::Result again = fresh.next(buffer, max);
    require(again.status == r.status && again.line == r.line);
    switch (r.status) {
        case LineReader::Status::Line:
            require(lf != std::string_view::npos && r.line.size() == lf + 1 && lf < max);
            require(r.line.data() == buffer.data());
            break;
        case LineReader::Status::NeedMore:
            require(lf == std::string_view::npos && buffer.size() < max && r.line.empty());
            break;
        case LineReader::Status::TooLong:
            require((lf == std::string_view::npos || lf >= max) && buffer.size() >= max);
            require(r.line.empty());
            break;
    }
}

void check_smtp_reply(std::string_view content) {
    const auto reply = p::parse_smtp_line(content);
    const bool digits =
        content.size() >= 3 && is_digit(content[0]) && is_digit(content[1]) && is_digit(content[2]);
    const bool separated =
        content.size() == 3 || (content.size() > 3 && (content[3] == ' ' || content[3] == '-'));
    require(reply.has_value() == (digits && separated));
    if (!reply) {
        return;
    }
    require(reply->code == (content[0] - '0') * 100 + (content[1] - '0') * 10 + (content[2] - '0'));
    require(reply->last == (content.size() == 3 || content[3] == ' '));
    require(reply->text == (content.size() == 3 ? std::string_view{} : content.substr(4)));
    require(reply->text.empty() || reply->text.data() == content.data() + 4);
}

// The digits of a "{digits}" (or, from a client, "{digits+}") that ends `content`; nullopt when
// it does not end so.
std::optional<std::string_view> announced(std::string_view content, bool client) {
    if (!content.ends_with('}')) {
        return std::nullopt;
    }
    content.remove_suffix(1);
    if (client && content.ends_with('+')) {
        content.remove_suffix(1);
    }
    const std::size_t open = content.rfind('{');
    if (open == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string_view digits = content.substr(open + 1);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) {
        return std::nullopt;
    }
    return digits;
}

void check_literal(std::string_view content) {
    using Kind = p::imap_syntax::Literal::Kind;
    for (const bool client : {true, false}) {
        const auto literal = p::imap_syntax::parse_literal(content, client);
        const auto digits = announced(content, client);
        require((literal.kind == Kind::None) == !digits.has_value());
        if (!digits) {
            continue;
        }
        const bool plus = content.ends_with("+}");
        const auto count = p::text::parse_count(*digits, p::text::kMaxCount);
        if (!count) {
            require(literal.kind == Kind::TooLarge);
            continue;
        }
        require(literal.kind == (plus ? Kind::NonSync : Kind::Sync) && literal.size == *count);
    }
}

void check_tag(std::string_view content) {
    const std::string_view tag = p::text::split_word(content).first;
    if (!p::imap_syntax::valid_tag(tag)) {
        return;
    }
    for (const char c : tag) {
        require(c > ' ' && c <= '~' &&
                std::string_view{"(){%*\"\\+"}.find(c) == std::string_view::npos);
    }
}

void check_id(std::string_view line) {
    using Verdict = p::imap_id::Filtered::Verdict;
    const auto filtered = p::imap_id::filter_command(line);
    if (filtered.verdict != Verdict::Rewritten) {
        require(filtered.line.empty());
        return;
    }
    const std::string& out = filtered.line;
    const std::string_view tag = line.substr(0, line.find(' '));
    require(out.starts_with(std::string{tag} + " ") && out.size() <= line.size());
    require(out.ends_with(p::text::eol_of(line)) && p::text::eol_of(out) == p::text::eol_of(line));
    require(p::imap_id::filter_command(out).verdict == Verdict::Unchanged);
}

bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const std::size_t sp = std::min(list.find(' '), list.size());
        if (p::text::iequals(list.substr(0, sp), token)) {
            return true;
        }
        list.remove_prefix(std::min(sp + 1, list.size()));
    }
    return false;
}

void check_capabilities(std::string_view line) {
    namespace caps = p::capabilities;
    if (const auto out = caps::filter_imap_line(line)) {
        // The terminator is kept as bytes; a bare CR that ended up before it makes it CRLF as
        // read ("* CAPABILITY A\r STARTTLS\n"), which is the backend's own doing.
        require(out->size() < line.size() && out->ends_with(p::text::eol_of(line)));
        require(!caps::filter_imap_line(*out));
    }
    const std::string_view content = p::text::strip_eol(line);
    if (const auto list = caps::remove_tokens(content, "STARTTLS", "LOGINDISABLED")) {
        require(list->size() < content.size());
        require(!has_token(*list, "STARTTLS") && !has_token(*list, "LOGINDISABLED"));
    }
    if (const auto greeting = caps::filter_pop3_greeting(line)) {
        require(caps::pop3_greeting_offers_xclient(line));
        require(greeting->size() + 10 == line.size());  // "[XCLIENT]" and one SP
        require(greeting->ends_with(p::text::eol_of(line)));
    }
    // What postern repeats to a plaintext client is never withheld from one, nor AUTH.
    if (caps::smtp_advertisable(content)) {
        const std::string reply_line = "250-" + std::string{content} + "\r\n";
        require(!caps::is_smtp_withheld(reply_line, true));
        require(!caps::is_smtp_withheld(reply_line, false));
        require(content.find_first_of("\r\n") == std::string_view::npos);
    }
}

void check_line(std::string_view found) {
    // A copy of its own size: a read past the line is a read past the allocation.
    const std::vector<char> copy(found.begin(), found.end());
    const std::string_view line{copy.data(), copy.size()};
    const std::string_view content = p::text::strip_eol(line);
    check_smtp_reply(content);
    check_literal(content);
    check_tag(content);
    check_id(line);
    check_capabilities(line);
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::size_t max = std::size_t{data[0]} + 1;
    const std::size_t step = std::size_t{data[1] % 16U} + 1;
    const std::string_view input{reinterpret_cast<const char*>(data) + 2, size - 2};

    LineReader reader;
    std::string buffer;  // what arrived and is not consumed yet, as a session holds it
    std::size_t arrived = 0;
    bool too_long = false;
    while (!too_long && (arrived < input.size() || !buffer.empty())) {
        const std::size_t more = std::min(step, input.size() - arrived);
        buffer.append(input.substr(arrived, more));
        arrived += more;
        for (;;) {
            LineReader::Result r = reader.next(buffer, max);
            check_answer(r, buffer, max);
            if (r.status == LineReader::Status::TooLong) {
                too_long = true;
            }
            if (r.status != LineReader::Status::Line) {
                break;
            }
            if (r.line.size() % 2 == 1) {  // looked at, left for later, found again first
                const std::size_t length = r.line.size();
                reader.unread(length);
                r = reader.next(buffer, max);
                require(r.status == LineReader::Status::Line && r.line.size() == length);
            }
            check_line(r.line);
            buffer.erase(0, r.line.size());
        }
        if (more == 0) {
            break;  // the rest is an unterminated line shorter than max
        }
    }
    if (!buffer.empty()) {
        check_line(buffer);  // the unterminated rest, as a line with no terminator
    }
    // Counts: digits and nothing else, at most the bound, the value the digits spell.
    const std::string_view head = input.substr(0, std::min<std::size_t>(input.size(), 24));
    if (const auto count = p::text::parse_count(head, p::text::kMaxCount)) {
        require(*count <= p::text::kMaxCount && std::all_of(head.begin(), head.end(), is_digit));
        const std::size_t zeros = std::min(head.find_first_not_of('0'), head.size() - 1);
        require(std::to_string(*count) == head.substr(zeros));
    }
    return 0;
}
