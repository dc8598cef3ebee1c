#include "protocols/smtp_content.hpp"

namespace postern::protocols::smtp_content {

namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kDot = ".";
constexpr std::string_view kDotCr = ".\r";
constexpr std::string_view kStuffedDotLine = "..\r\n";
constexpr std::string_view kEnd = ".\r\n";  // after the CRLF already forwarded

}  // namespace

Step DataContent::next(std::string_view chunk) noexcept {
    const char c = chunk.front();
    switch (state_) {
        case State::InLine:
            return lines(chunk, false);
        case State::InLineCr:
            return lines(chunk, true);
        case State::LineStartCrlf:
        case State::LineStartLf:
            if (c == '.') {
                state_ = state_ == State::LineStartCrlf ? State::DotCrlf : State::DotLf;
                return {1, 0, {}};
            }
            return lines(chunk, false);
        case State::DotCrlf:
        case State::DotLf:
            if (c == '\r') {
                state_ = state_ == State::DotCrlf ? State::DotCrCrlf : State::DotCrLf;
                return {1, 0, {}};
            }
            if (c == '\n') {  // ".\n": not the end, whatever came before
                state_ = State::LineStartLf;
                return {1, 0, kStuffedDotLine};
            }
            state_ = State::InLine;  // ".x": a line that starts with a dot, as sent
            return {0, 0, kDot};
        case State::DotCrCrlf:
            if (c == '\n') {
                state_ = State::Done;
                return {1, 0, kEnd};
            }
            state_ = State::InLine;
            return {0, 0, kDotCr};
        case State::DotCrLf:
            if (c == '\n') {  // "\n.\r\n": not the end, but this line ended in CRLF
                state_ = State::LineStartCrlf;
                return {1, 0, kStuffedDotLine};
            }
            state_ = State::InLine;
            return {0, 0, kDotCr};
        case State::Done:
            break;
    }
    return {};
}

// Inside lines: forwards whole CRLF lines in one step, up to the first bare LF (replaced), the
// first line that starts with a dot (held by the next step) or the end of the chunk.
Step DataContent::lines(std::string_view chunk, bool cr_before) noexcept {
    std::size_t pos = 0;
    for (;;) {
        const std::size_t lf = chunk.find('\n', pos);
        if (lf == std::string_view::npos) {
            state_ = chunk.back() == '\r' ? State::InLineCr : State::InLine;
            return {chunk.size(), chunk.size(), {}};
        }
        const bool bare = lf == 0 ? !cr_before : chunk[lf - 1] != '\r';
        if (bare) {
            state_ = State::LineStartLf;
            return {lf + 1, lf, kCrlf};
        }
        pos = lf + 1;
        if (pos == chunk.size() || chunk[pos] == '.') {
            state_ = State::LineStartCrlf;
            return {pos, pos, {}};
        }
    }
}

}  // namespace postern::protocols::smtp_content
