#pragma once
// An SMTP message's DATA content on its way to the backend (RFC 5321 §4.1.1.4, §2.3.8): where it
// ends, and the one form in which postern passes it on, so that every backend frames it exactly
// as postern does.
//
// The end is "\r\n.\r\n" alone, strict CRLF on both lines, as Postfix 3.9's default
// smtpd_forbid_bare_newline = normalize has it. Backends disagree about anything looser: Postfix
// 3.7 (smtpd_forbid_bare_newline = no) ends DATA at "\n.\n", a patched one does not. Were a bare
// LF relayed as sent, the commands after "\n.\n" would reach a lenient backend unseen by postern
// (no STARTTLS/XCLIENT filter: SMTP smuggling, December 2023); were "\n.\n" taken as the end,
// postern would smuggle for the client into a strict one. So the content is normalized on the
// way, as Postfix's normalize mode reads it:
//  - a bare LF (one not after CR) becomes CRLF: a line ending the client may mean, no longer one
//    any backend could read differently;
//  - a "." line that is not the end (the line before it or the line itself ended in a bare LF)
//    is passed on dot-stuffed, "..\r\n": content, to every backend, as it is to postern.
// Everything else is relayed byte for byte, in chunks as large as the input (a bare CR stays:
// Postfix keeps it as content, and changing it would alter more than framing). Refusing bare LF
// instead (smtpd_forbid_bare_newline = reject) would lose the mail of old clients that mix line
// endings, for no gain: after normalization the backend cannot disagree.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace postern::protocols::smtp_content {

// One step through the content: of the front `consumed` bytes of the chunk, the backend gets
// the first `forward` as they are, then `append` in place of the rest (a replaced line ending,
// or "." bytes held back until it was known whether they end the content).
struct Step {
    std::size_t consumed = 0;
    std::size_t forward = 0;
    std::string_view append;  // static text
};

// The content of one DATA command, from the first byte after its 354 reply (a line start).
class DataContent {
public:
    // `chunk` is not empty and done() is false. A step may consume nothing but then appends
    // something and the next one consumes; so a loop over next() always ends.
    [[nodiscard]] Step next(std::string_view chunk) noexcept;
    // "\r\n.\r\n" has been consumed: what follows is a command.
    [[nodiscard]] bool done() const noexcept { return state_ == State::Done; }

private:
    enum class State : std::uint8_t {
        InLine,         // the last byte was neither CR nor a line end
        InLineCr,       // the last byte was a CR (forwarded; a LF next makes it CRLF)
        LineStartCrlf,  // at a line start after CRLF (or at the start of content)
        LineStartLf,    // at a line start after a bare LF
        DotCrlf,        // "." held at a line start after CRLF
        DotLf,          // "." held at a line start after a bare LF
        DotCrCrlf,      // ".\r" held at a line start after CRLF: LF next is the end
        DotCrLf,        // ".\r" held at a line start after a bare LF
        Done,
    };

    Step lines(std::string_view chunk, bool cr_before) noexcept;

    State state_ = State::LineStartCrlf;
};

}  // namespace postern::protocols::smtp_content
