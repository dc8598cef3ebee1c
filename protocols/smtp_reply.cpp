#include "protocols/smtp_reply.hpp"

namespace postern::protocols {

namespace {

constexpr bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

}  // namespace

std::optional<SmtpLine> parse_smtp_line(std::string_view line) noexcept {
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
        return std::nullopt;
    }
    SmtpLine out;
    out.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (line.size() == 3) {
        out.last = true;
        return out;
    }
    if (line[3] != ' ' && line[3] != '-') {
        return std::nullopt;
    }
    out.last = line[3] == ' ';
    out.text = line.substr(4);
    return out;
}

}  // namespace postern::protocols
