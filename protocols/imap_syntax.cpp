#include "protocols/imap_syntax.hpp"

#include "protocols/text.hpp"

#include <algorithm>

namespace postern::protocols::imap_syntax {

Literal parse_literal(std::string_view content, bool client) noexcept {
    if (content.empty() || content.back() != '}') {
        return {};
    }
    std::size_t end = content.size() - 1;
    const bool non_sync = client && end > 0 && content[end - 1] == '+';
    if (non_sync) {
        --end;
    }
    std::size_t begin = end;
    while (begin > 0 && content[begin - 1] >= '0' && content[begin - 1] <= '9') {
        --begin;
    }
    if (begin == end || begin == 0 || content[begin - 1] != '{') {
        return {};
    }
    const auto size = text::parse_count(content.substr(begin, end - begin), text::kMaxCount);
    if (!size) {
        return {Literal::Kind::TooLarge, 0};
    }
    return {non_sync ? Literal::Kind::NonSync : Literal::Kind::Sync, *size};
}

bool is_status_word(std::string_view word) noexcept {
    using text::iequals;
    return iequals(word, "OK") || iequals(word, "NO") || iequals(word, "BAD") ||
           iequals(word, "PREAUTH") || iequals(word, "BYE");
}

bool response_may_open_literal(std::string_view first_line) noexcept {
    const auto [star, rest] = text::split_word(first_line);
    if (star != "*") {
        return false;  // tagged: always a status response (§7.1); or "+" (§7.5)
    }
    const std::string_view word = text::split_word(rest).first;
    return !is_status_word(word) && !text::iequals(word, "CAPABILITY");
}

bool valid_tag(std::string_view tag) noexcept {
    return !tag.empty() && tag.find_first_of("(){%*\"\\+") == std::string_view::npos &&
           std::all_of(tag.begin(), tag.end(), [](char c) { return c > ' ' && c <= '~'; });
}

}  // namespace postern::protocols::imap_syntax
