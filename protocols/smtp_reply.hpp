#pragma once
// One line of an SMTP reply (RFC 5321 §4.2), read the same way by the SMTP machine (backend
// replies), the daemon's EHLO learner (smtp_ehlo_probe.hpp) and `postern probe`
// (cli/probe/dialogue.cpp):
//
//   Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
//
// "250-SIZE 100" -> {250, false, "SIZE 100"}; "250 STARTTLS" -> {250, true, "STARTTLS"}; a bare
// "221" ends its reply with no text. Anything else (fewer than three digits, another separator)
// is not a reply line: the reader can no longer follow the dialogue.

#include <optional>
#include <string_view>

namespace postern::protocols {

struct SmtpLine {
    int code = 0;           // 100..999 as written; the caller judges the class (2xx, 4xx, ...)
    bool last = false;      // "250 " (or a bare "250") ends the reply, "250-" continues it
    std::string_view text;  // after the separator; may be empty; points into the line
};

// `line` without its terminator (text::strip_eol()).
[[nodiscard]] std::optional<SmtpLine> parse_smtp_line(std::string_view line) noexcept;

}  // namespace postern::protocols
