#pragma once
// PROXY protocol wire constants (HAProxy's doc/proxy-protocol.txt), shared by the builders
// (proxy_header.cpp) and the parsers (proxy_header_parse.cpp). Internal to protocols/.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace postern::protocols::proxy_header::wire {

inline constexpr std::string_view kV1Prefix = "PROXY ";
// Spec §2.2; a string_view because of the NUL at offset 4.
inline constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
// The fixed part: signature, version and command, family and transport, big-endian length.
inline constexpr std::size_t kVersionCommandAt = 12;
inline constexpr std::size_t kFamilyAt = 13;
inline constexpr std::size_t kLengthAt = 14;
inline constexpr std::size_t kV2FixedLength = 16;
inline constexpr std::size_t kTlvHeaderLength = 3;

inline constexpr std::uint8_t kCommandLocal = 0x0;
inline constexpr std::uint8_t kCommandProxy = 0x1;
inline constexpr std::uint8_t kUnspec = 0x00;
inline constexpr std::uint8_t kTcp4 = 0x11;
inline constexpr std::uint8_t kUdp4 = 0x12;
inline constexpr std::uint8_t kTcp6 = 0x21;
inline constexpr std::uint8_t kUdp6 = 0x22;
inline constexpr std::uint8_t kUnixStream = 0x31;
inline constexpr std::uint8_t kUnixDgram = 0x32;
inline constexpr std::size_t kTcp4AddressLength = 2 * 4 + 2 * 2;
inline constexpr std::size_t kTcp6AddressLength = 2 * 16 + 2 * 2;

inline constexpr std::uint8_t kTypeAuthority = 0x02;
inline constexpr std::uint8_t kTypeCrc32c = 0x03;
inline constexpr std::uint8_t kTypeSsl = 0x20;
inline constexpr std::uint8_t kSubtypeSslVersion = 0x21;
inline constexpr std::uint8_t kSubtypeSslCipher = 0x23;
inline constexpr std::uint8_t kClientSsl = 0x01;
inline constexpr std::size_t kSslFixedLength = 1 + 4;  // client flags, verify result

}  // namespace postern::protocols::proxy_header::wire
