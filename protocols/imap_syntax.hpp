#pragma once
// The two pieces of IMAP syntax (RFC 9051 §4.3, §9) the IMAP machine reads in both directions:
// where a line announces a literal, and whether a client's tag is one postern may echo back in
// its own replies. Pure; nothing here reads outside the given view.

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

// 1*<ASTRING-CHAR except "+"> (RFC 9051 §9): printable ASCII without SP, "(", ")", "{", "%",
// "*", DQUOTE or "\\", so that echoing it cannot break or extend our reply.
[[nodiscard]] bool valid_tag(std::string_view tag) noexcept;

}  // namespace postern::protocols::imap_syntax
