#pragma once
// LineReader finds the next LF-terminated line at the front of a buffer that the session
// keeps and re-offers with more bytes appended (machine.hpp's driving contract). It remembers
// how far it has already scanned, so a client trickling one byte per packet costs O(n)
// overall, not O(n^2) (h11's _receivebuffer). A line ends at LF; "\r\n" is the norm (RFC 5321
// §2.3.8, RFC 9051 §2.2, RFC 1939 §3) but bare LF is accepted so it can be relayed unchanged.
// Invariant: the buffer passed to next() always starts at the first byte not yet consumed.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace postern::protocols {

class LineReader {
public:
    enum class Status : std::uint8_t {
        Line,      // `line` is complete, terminator included
        NeedMore,  // no LF yet and fewer than `max` bytes: wait for more
        TooLong,   // `max` bytes and still no LF: the caller must fail, not wait
    };
    struct Result {
        Status status;
        std::string_view line;  // empty unless status == Line
    };

    // Looks for LF within the first `max` bytes of `buffer` (so a line, terminator included,
    // may be exactly `max` bytes). Never reads past `buffer`; never allocates.
    [[nodiscard]] Result next(std::string_view buffer, std::size_t max) noexcept;

    // The caller looked at the line of `length` bytes that next() returned and left it
    // unconsumed at the front of the buffer; the next call finds it again without rescanning.
    void unread(std::size_t length) noexcept;

private:
    std::size_t scanned_ = 0;  // bytes at the front already known to hold no LF
};

}  // namespace postern::protocols
