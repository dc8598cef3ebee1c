#include "protocols/text.hpp"

#include <algorithm>

namespace postern::protocols::text {

namespace {

constexpr char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool is_blank(char c) noexcept {
    return c == ' ' || c == '\t';
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view strip_eol(std::string_view line) noexcept {
    return line.substr(0, line.size() - eol_of(line).size());
}

std::string_view eol_of(std::string_view line) noexcept {
    if (line.empty() || line.back() != '\n') {
        return {};
    }
    if (line.size() >= 2 && line[line.size() - 2] == '\r') {
        return line.substr(line.size() - 2);
    }
    return line.substr(line.size() - 1);
}

Words split_word(std::string_view s) noexcept {
    std::size_t begin = 0;
    while (begin < s.size() && is_blank(s[begin])) {
        ++begin;
    }
    std::size_t end = begin;
    while (end < s.size() && !is_blank(s[end]) && s[end] != '\r') {
        ++end;
    }
    const std::size_t rest = end < s.size() ? end + 1 : end;
    return {s.substr(begin, end - begin), s.substr(rest)};
}

std::optional<std::uint64_t> parse_count(std::string_view digits, std::uint64_t max) noexcept {
    if (digits.empty()) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        // value * 10 + digit > max, asked without overflowing
        if (digit > max || value > (max - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

bool has_nul(std::string_view s) noexcept {
    return s.find('\0') != std::string_view::npos;
}

}  // namespace postern::protocols::text
