#pragma once
// The pieces of IMAP syntax (RFC 9051 §4.3, §7, §9) the IMAP machine reads in both directions:
// where a line announces a literal, which backend responses may carry one at all, and whether a
// client's tag is one postern may echo back in its own replies. Pure; nothing here reads outside
// the given view.

#include <cstdint>
#include <string_view>

namespace postern::protocols::imap_syntax {

struct Literal {
    enum class Kind : std::uint8_t { None, Sync, NonSync, TooLarge };
    Kind kind = Kind::None;
    std::uint64_t size = 0;
};

// A line (terminator stripped) that ends in "{n}" (or "{n+}", client only: RFC 7888) announces
// n raw bytes. Anything else ending in '}' is text, as the backend's parser also sees it.
// TooLarge: n over text::kMaxCount.
[[nodiscard]] Literal parse_literal(std::string_view content, bool client) noexcept;

// OK, NO, BAD, PREAUTH or BYE (ASCII case-insensitive): the words of a status response
// (RFC 9051 §7.1), tagged or untagged.
[[nodiscard]] bool is_status_word(std::string_view word) noexcept;

// Whether the first line of a backend response (terminator stripped) may announce a literal.
// Only untagged data responses carry them (FETCH, LIST, ID, ...: RFC 9051 §7.2-§7.5). A status
// response (tagged, or untagged OK/NO/BAD/PREAUTH/BYE) and a "+" continuation request end in
// resp-text or base64, and CAPABILITY data in atoms (§9): a "{n}" at their end is text, as the
// client's parser reads it, so it must not hide the lines after it from the filters. The lines
// that continue a response after a literal are not first lines: any of them may announce one.
[[nodiscard]] bool response_may_open_literal(std::string_view first_line) noexcept;

// 1*<ASTRING-CHAR except "+"> (RFC 9051 §9): printable ASCII without SP, "(", ")", "{", "%",
// "*", DQUOTE or "\\", so that echoing it cannot break or extend our reply.
[[nodiscard]] bool valid_tag(std::string_view tag) noexcept;

}  // namespace postern::protocols::imap_syntax
