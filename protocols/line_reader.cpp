#include "protocols/line_reader.hpp"

#include <algorithm>

namespace postern::protocols {

LineReader::Result LineReader::next(std::string_view buffer, std::size_t max) noexcept {
    if (scanned_ > buffer.size()) {
        scanned_ = 0;  // the caller broke the contract; rescanning is correct, just slower
    }
    const std::size_t limit = std::min(buffer.size(), max);
    if (scanned_ < limit) {
        const std::size_t lf = buffer.substr(0, limit).find('\n', scanned_);
        if (lf != std::string_view::npos) {
            scanned_ = 0;
            return {Status::Line, buffer.substr(0, lf + 1)};
        }
        scanned_ = limit;
    }
    return {buffer.size() >= max ? Status::TooLong : Status::NeedMore, {}};
}

void LineReader::unread(std::size_t length) noexcept {
    scanned_ = length > 0 ? length - 1 : 0;
}

}  // namespace postern::protocols
