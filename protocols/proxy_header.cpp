// Building PROXY protocol headers (postern towards its backends) and the small pure helpers.

#include "protocols/proxy_header.hpp"

#include "protocols/ip_text.hpp"
#include "protocols/proxy_header_wire.hpp"

#include <algorithm>

namespace postern::protocols::proxy_header {

namespace {

void append_be16(std::string& out, std::size_t value) {
    out += static_cast<char>((value >> 8U) & 0xFFU);
    out += static_cast<char>(value & 0xFFU);
}

void append_tlv(std::string& out, std::uint8_t type, std::string_view value) {
    out += static_cast<char>(type);
    append_be16(out, value.size());
    out += value;
}

void append_address(std::string& out, const Address& address, bool as_ipv6) {
    if (as_ipv6 && address.family == 4) {
        out.append(10, '\0');  // ::ffff:a.b.c.d, RFC 4291 §2.5.5.2
        out.append(2, '\xFF');
    }
    const std::size_t size = address.family == 4 ? 4 : 16;
    for (std::size_t i = 0; i < size; ++i) {
        out += static_cast<char>(address.bytes[i]);
    }
}

bool has_family(const Address& address) {
    return address.family == 4 || address.family == 6;
}

}  // namespace

std::string to_string(const Address& address) {
    if (address.family == 4) {
        return ip_text::format_ipv4(
            {address.bytes[0], address.bytes[1], address.bytes[2], address.bytes[3]});
    }
    return address.family == 6 ? ip_text::format_ipv6(address.bytes) : std::string{};
}

std::string build_v1(const Header& header) {
    const Address& from = header.source;
    const Address& to = header.destination;
    if (header.local || !has_family(from) || from.family != to.family) {
        return "PROXY UNKNOWN\r\n";
    }
    std::string line(wire::kV1Prefix);
    line += from.family == 4 ? "TCP4 " : "TCP6 ";
    line += to_string(from) + ' ' + to_string(to) + ' ';
    line += std::to_string(from.port) + ' ' + std::to_string(to.port) + "\r\n";
    return line;
}

std::string build_v2(const Header& header) {
    std::string out(wire::kV2Signature);
    const Address& from = header.source;
    const Address& to = header.destination;
    if (header.local || !has_family(from) || !has_family(to)) {
        out +=
            static_cast<char>(0x20U | (header.local ? wire::kCommandLocal : wire::kCommandProxy));
        out += static_cast<char>(wire::kUnspec);
        append_be16(out, 0);
        return out;
    }
    const bool ipv6 = from.family == 6 || to.family == 6;
    std::string body;
    append_address(body, from, ipv6);
    append_address(body, to, ipv6);
    append_be16(body, from.port);
    append_be16(body, to.port);
    if (is_authority(header.authority)) {
        append_tlv(body, wire::kTypeAuthority, header.authority);
    }
    if (header.tls) {
        std::string ssl{static_cast<char>(wire::kClientSsl), '\0', '\0', '\0', '\0'};
        if (is_tlv_string(header.tls->version)) {
            append_tlv(ssl, wire::kSubtypeSslVersion, header.tls->version);
        }
        if (is_tlv_string(header.tls->cipher)) {
            append_tlv(ssl, wire::kSubtypeSslCipher, header.tls->cipher);
        }
        append_tlv(body, wire::kTypeSsl, ssl);
    }
    out += static_cast<char>(0x20U | wire::kCommandProxy);
    out += static_cast<char>(ipv6 ? wire::kTcp6 : wire::kTcp4);
    append_be16(out, body.size());
    return out + body;
}

bool is_authority(std::string_view name) noexcept {
    return !name.empty() && name.size() <= kMaxTlvString &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.';
           });
}

bool is_tlv_string(std::string_view s) noexcept {
    return !s.empty() && s.size() <= kMaxTlvString &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

std::uint32_t crc32c(std::string_view bytes) noexcept {
    // Bitwise rather than table driven: headers are short and this keeps no table around.
    std::uint32_t crc = 0xFFFFFFFFU;
    for (const char c : bytes) {
        crc ^= static_cast<std::uint8_t>(c);
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1U) ^ (0x82F63B78U & (0U - (crc & 1U)));
        }
    }
    return ~crc;
}

}  // namespace postern::protocols::proxy_header
