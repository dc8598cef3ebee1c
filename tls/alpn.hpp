#pragma once
// ALPN (RFC 7301) for mail listeners, against cross-protocol attacks (ALPACA, USENIX Security
// 2021): a client that names application protocols must name the listener's, or the handshake
// ends with the no_application_protocol alert, so an HTTPS client steered to port 993 never
// gets its request relayed to the IMAP backend. A client that sends no ALPN is served as
// before (most mail clients send none). The parsing is pure (unit-tested and fuzzed alone); the
// callback is installed on every server context by tls/policy.cpp, because OpenSSL asks the
// SSL's current context, which after SNI selection is the certificate's.

#include "protocols/protocol.hpp"

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace postern::tls {

// The ALPN id a listener of `protocol` accepts: "imap", "pop3" (IANA's ALPN registry, citing
// RFC 2595) and "smtp", the ids nginx's mail proxy uses as well.
[[nodiscard]] std::string_view alpn_id(protocols::Protocol protocol) noexcept;

// The entry equal to `id` in a ClientHello's protocol_name_list (RFC 7301 §3.1: entries of a
// one-byte length then the name; the list's own two-byte length already removed, as OpenSSL
// hands it to the callback): a view into `list`. nullopt when absent; a malformed tail ends the
// search. Never reads outside `list`.
[[nodiscard]] std::optional<std::span<const std::uint8_t>> find_alpn(
    std::span<const std::uint8_t> list, std::string_view id) noexcept;

// The list's names for the log, comma-separated, raw bytes (the log escapes them), cut at
// `max` bytes with "...".
inline constexpr std::size_t kMaxAlpnText = 100;
[[nodiscard]] std::string alpn_list_text(std::span<const std::uint8_t> list,
                                         std::size_t max = kMaxAlpnText);

// Installs the select callback: the listener's id (from the SSL's tls::Handshake) when the
// client offers it, else the fatal no_application_protocol alert with the reason in
// Handshake::refusal; no ALPN extension: none negotiated, as without the callback.
void install_alpn(SSL_CTX* ctx) noexcept;

}  // namespace postern::tls
