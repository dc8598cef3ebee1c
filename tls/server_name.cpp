#include "tls/server_name.hpp"

#include "conf/parse_value.hpp"

#include <algorithm>

namespace postern::tls {
namespace {

constexpr std::uint8_t kHostNameType = 0;

char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool looks_like_ipv4(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(),
                                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

std::optional<std::string> lowered_without_dot(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    std::string out(name);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

}  // namespace

std::optional<std::string_view> parse_server_name_ext(std::span<const std::uint8_t> ext) noexcept {
    // ServerNameList: uint16 length, then entries { uint8 type; uint16 len; bytes }.
    if (ext.size() < 2) {
        return std::nullopt;
    }
    const std::size_t list_len = (std::size_t{ext[0]} << 8U) | ext[1];
    if (list_len + 2 != ext.size()) {
        return std::nullopt;
    }
    std::size_t pos = 2;
    while (pos + 3 <= ext.size()) {
        const std::uint8_t type = ext[pos];
        const std::size_t len = (std::size_t{ext[pos + 1]} << 8U) | ext[pos + 2];
        pos += 3;
        if (len > ext.size() - pos) {
            return std::nullopt;
        }
        if (type == kHostNameType) {
            const auto* begin = reinterpret_cast<const char*>(ext.data() + pos);
            return std::string_view{begin, len};
        }
        pos += len;
    }
    return std::nullopt;
}

std::optional<std::string> normalize_host_name(std::string_view name) {
    if (name.find(':') != std::string_view::npos) {
        return std::nullopt;  // IPv6 literal (or garbage)
    }
    auto out = lowered_without_dot(name);
    if (!conf::is_dns_name(*out) || looks_like_ipv4(*out)) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::string> normalize_san_name(std::string_view name) {
    if (name.size() > 2 && name.substr(0, 2) == "*.") {
        auto parent = normalize_host_name(name.substr(2));
        // "*.com" would cover a whole TLD: refuse wildcards with fewer than two labels after it.
        if (!parent || parent->find('.') == std::string::npos) {
            return std::nullopt;
        }
        return "*." + *parent;
    }
    return normalize_host_name(name);
}

std::string_view wildcard_key(std::string_view host) noexcept {
    const std::size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 >= host.size()) {
        return {};
    }
    return host.substr(dot);
}

}  // namespace postern::tls
