#pragma once
// Where an SMTP message's content ends (RFC 5321 §4.1.1.4): the SMTP machine relays DATA content
// byte for byte and only looks for its terminator, "\r\n.\r\n", strict CRLF on purpose: the
// terminator a patched backend recognises, nothing looser (the "SMTP smuggling" parser
// differentials of December 2023 come from looser ones).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace postern::protocols::smtp_content {

// Progress through "\r\n.\r\n": the number of its bytes that end what was forwarded so far.
// 2 at the start of content (it starts at a line start: ".\r\n" ends it at once).
inline constexpr std::uint8_t kDotMatched = 5;

// Bytes of `chunk` that belong to the content, terminator included; `state` carries a
// terminator split across chunks and is kDotMatched once it is complete.
[[nodiscard]] std::size_t scan_content(std::string_view chunk, std::uint8_t& state) noexcept;

}  // namespace postern::protocols::smtp_content
