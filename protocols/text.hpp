#pragma once
// Small, allocation-free helpers for reading mail protocol lines: ASCII case-insensitive
// comparison, word splitting, line terminators and bounded decimal numbers. Shared by the
// IMAP, POP3 and SMTP machines so that all three agree on what a "word" and a "number" are.
// Invariant: nothing here reads outside the given view or allocates.

#include <cstdint>
#include <optional>
#include <string_view>

namespace postern::protocols::text {

// RFC 9051 §4.3 ("number" is an unsigned 32-bit integer) bounds IMAP literals; SMTP BDAT chunk
// sizes (RFC 3030 §2) get the same bound so neither side can overflow on a huge count.
inline constexpr std::uint64_t kMaxCount = 0xFFFF'FFFFULL;

[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;
[[nodiscard]] bool istarts_with(std::string_view s, std::string_view prefix) noexcept;

// The line without its terminator: a trailing "\n" and, before it, one "\r" (bare-LF lines
// from sloppy clients are read, never rewritten).
[[nodiscard]] std::string_view strip_eol(std::string_view line) noexcept;

// The terminator strip_eol() removed ("\r\n", "\n" or empty).
[[nodiscard]] std::string_view eol_of(std::string_view line) noexcept;

struct Words {
    std::string_view first;  // the first word
    std::string_view rest;   // everything after the separator that ended it
};

// Skips leading SP/HTAB, then takes bytes up to the next SP, HTAB or CR. Deliberately wider
// than the grammars (which only allow SP) so that "STARTTLS\t" is still seen as STARTTLS, as
// lenient backends would see it.
[[nodiscard]] Words split_word(std::string_view s) noexcept;

// 1*DIGIT and nothing else, at most `max`; std::nullopt otherwise (empty, sign, junk, overflow).
[[nodiscard]] std::optional<std::uint64_t> parse_count(std::string_view digits,
                                                       std::uint64_t max) noexcept;

[[nodiscard]] bool has_nul(std::string_view s) noexcept;

}  // namespace postern::protocols::text
