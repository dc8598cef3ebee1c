#include "protocols/ip_text.hpp"

#include <algorithm>
#include <cstddef>

namespace postern::protocols::ip_text {

namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Walks a dotted quad. With `partial`, accepts any text more characters could complete.
bool walk_ipv4(std::string_view text, bool partial, Ipv4& out) noexcept {
    std::size_t octet = 0;
    std::size_t digits = 0;
    unsigned value = 0;
    for (const char c : text) {
        if (c == '.') {
            if (digits == 0 || octet == 3) {
                return false;
            }
            out[octet++] = static_cast<std::uint8_t>(value);
            digits = 0;
            value = 0;
            continue;
        }
        if (c < '0' || c > '9' || (digits == 1 && value == 0)) {
            return false;  // not a digit, or a digit after a heading zero
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
        if (++digits > 3 || value > 255) {
            return false;
        }
    }
    if (partial) {
        return true;
    }
    if (digits == 0 || octet != 3) {
        return false;
    }
    out[3] = static_cast<std::uint8_t>(value);
    return true;
}

void append_hex(std::string& out, unsigned value) {
    constexpr std::string_view kDigits = "0123456789abcdef";
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
        const unsigned digit = (value >> static_cast<unsigned>(shift)) & 0xFU;
        if (digit != 0 || started || shift == 0) {
            out += kDigits[digit];
            started = true;
        }
    }
}

}  // namespace

std::optional<Ipv4> parse_ipv4(std::string_view text) noexcept {
    Ipv4 out{};
    if (!walk_ipv4(text, false, out)) {
        return std::nullopt;
    }
    return out;
}

bool could_be_ipv4(std::string_view text) noexcept {
    Ipv4 scratch{};
    return walk_ipv4(text, true, scratch);
}

bool could_be_ipv6(std::string_view text) noexcept {
    return text.size() <= kMaxIpv6Text && std::all_of(text.begin(), text.end(), [](char c) {
               return hex_value(c) >= 0 || c == ':' || c == '.';
           });
}

std::optional<Ipv6> parse_ipv6(std::string_view text) noexcept {
    if (text.size() > kMaxIpv6Text) {
        return std::nullopt;
    }
    std::array<std::uint16_t, 8> groups{};
    std::size_t count = 0;
    std::size_t gap = groups.size();  // where "::" stands, in groups; size(): none
    std::size_t i = 0;
    if (text.starts_with("::")) {
        gap = 0;
        i = 2;
    } else if (text.starts_with(":")) {
        return std::nullopt;
    }
    while (i < text.size()) {
        const std::size_t start = i;
        unsigned value = 0;
        while (i < text.size() && i - start < 4 && hex_value(text[i]) >= 0) {
            value = value << 4U | static_cast<unsigned>(hex_value(text[i]));
            ++i;
        }
        if (i < text.size() && text[i] == '.') {
            // A dotted-quad tail: the last 32 bits, and the end of the text.
            const auto v4 = parse_ipv4(text.substr(start));
            if (!v4 || count > 6) {
                return std::nullopt;
            }
            groups[count++] = static_cast<std::uint16_t>((*v4)[0] << 8U | (*v4)[1]);
            groups[count++] = static_cast<std::uint16_t>((*v4)[2] << 8U | (*v4)[3]);
            break;
        }
        if (i == start || count == groups.size()) {
            return std::nullopt;
        }
        groups[count++] = static_cast<std::uint16_t>(value);
        if (i == text.size()) {
            break;
        }
        if (text[i] != ':' || ++i == text.size()) {
            return std::nullopt;  // a fifth hex digit, junk, or a single trailing ':'
        }
        if (text[i] == ':') {
            if (gap != groups.size()) {
                return std::nullopt;
            }
            gap = count;
            ++i;
        }
    }
    // Without "::" all eight groups are written; with it, it stands for at least one.
    if (gap == groups.size() ? count != groups.size() : count == groups.size()) {
        return std::nullopt;
    }
    Ipv6 out{};
    const std::size_t shift = groups.size() - count;  // zero groups "::" stands for
    for (std::size_t g = 0; g < count; ++g) {
        const std::size_t at = g < gap ? g : g + shift;
        out[2 * at] = static_cast<std::uint8_t>(groups[g] >> 8U);
        out[2 * at + 1] = static_cast<std::uint8_t>(groups[g] & 0xFFU);
    }
    return out;
}

std::string format_ipv4(const Ipv4& address) {
    std::string out;
    for (std::size_t i = 0; i < address.size(); ++i) {
        if (i != 0) {
            out += '.';
        }
        out += std::to_string(address[i]);
    }
    return out;
}

std::string format_ipv6(const Ipv6& address) {
    std::array<unsigned, 8> groups{};
    for (std::size_t g = 0; g < groups.size(); ++g) {
        groups[g] = static_cast<unsigned>(address[2 * g] << 8U | address[2 * g + 1]);
    }
    if (std::all_of(groups.begin(), groups.begin() + 5, [](unsigned g) { return g == 0; }) &&
        groups[5] == 0xFFFFU) {
        return "::ffff:" + format_ipv4({address[12], address[13], address[14], address[15]});
    }
    std::size_t best = groups.size();
    std::size_t best_length = 1;  // a single zero group is never compressed (RFC 5952 §4.2.2)
    for (std::size_t g = 0; g < groups.size();) {
        std::size_t end = g;
        while (end < groups.size() && groups[end] == 0) {
            ++end;
        }
        if (end - g > best_length) {
            best = g;
            best_length = end - g;
        }
        g = end == g ? g + 1 : end;
    }
    std::string out;
    for (std::size_t g = 0; g < groups.size();) {
        if (g == best) {
            out += "::";
            g += best_length;
            continue;
        }
        if (!out.empty() && out.back() != ':') {
            out += ':';
        }
        append_hex(out, groups[g]);
        ++g;
    }
    return out;
}

}  // namespace postern::protocols::ip_text
