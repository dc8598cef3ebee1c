#include "protocols/goodbye.hpp"

#include "protocols/text.hpp"

namespace postern::protocols {

bool ends_with_goodbye(Protocol protocol, std::string_view tail) noexcept {
    if (text::eol_of(tail).empty()) {
        return false;  // the last line is not finished
    }
    tail = text::strip_eol(tail);
    const std::size_t newline = tail.find_last_of('\n');
    std::string_view line = newline == std::string_view::npos ? tail : tail.substr(newline + 1);
    if (protocol == Protocol::Imap) {
        const auto [tag, command] = text::split_word(line);
        if (tag.empty() || tag.size() == line.size()) {
            return false;
        }
        line = command;
    }
    return text::iequals(line, protocol == Protocol::Imap ? "LOGOUT" : "QUIT");
}

}  // namespace postern::protocols
