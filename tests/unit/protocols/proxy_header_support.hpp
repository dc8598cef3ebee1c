#pragma once
// What the PROXY header tests share: bytes written as hex, the v2 signature, IPv4 addresses.

#include "protocols/proxy_header.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace postern::protocols::proxy_header::test {

// "0D0A 0D0A" -> those bytes; spaces are for the reader.
inline std::string from_hex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i < hex.size();) {
        if (hex[i] == ' ') {
            ++i;
            continue;
        }
        out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
        i += 2;
    }
    return out;
}

// The v2 signature (spec §2.2).
inline std::string sig() {
    return from_hex("0D0A0D0A 000D0A51 5549540A");
}

inline Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                  std::uint16_t port) {
    return {4, {a, b, c, d}, port};
}

}  // namespace postern::protocols::proxy_header::test
