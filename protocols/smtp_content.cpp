#include "protocols/smtp_content.hpp"

namespace postern::protocols::smtp_content {

namespace {

std::uint8_t dot_step(std::uint8_t state, char c) noexcept {
    switch (state) {
        case 1:
            return c == '\n' ? 2 : (c == '\r' ? 1 : 0);
        case 2:
            return c == '.' ? 3 : (c == '\r' ? 1 : 0);
        case 3:
            return c == '\r' ? 4 : 0;
        case 4:
            return c == '\n' ? kDotMatched : (c == '\r' ? 1 : 0);
        default:
            return c == '\r' ? 1 : 0;
    }
}

}  // namespace

// Skips to the next CR while nothing is matched.
std::size_t scan_content(std::string_view chunk, std::uint8_t& state) noexcept {
    std::size_t i = 0;
    while (i < chunk.size()) {
        if (state == 0) {
            i = chunk.find('\r', i);
            if (i == std::string_view::npos) {
                return chunk.size();
            }
        }
        state = dot_step(state, chunk[i++]);
        if (state == kDotMatched) {
            return i;
        }
    }
    return chunk.size();
}

}  // namespace postern::protocols::smtp_content
