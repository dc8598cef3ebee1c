#pragma once
// Pure filters that take the STARTTLS/STLS offer (and IMAP's LOGINDISABLED) out of a plaintext
// backend's capability lists before they reach a client that is already on TLS. A client
// that saw STARTTLS would try a TLS-in-TLS upgrade (RFC 2595 §3.1, RFC 3207 §4.2), and
// LOGINDISABLED only reflects the backend's plaintext view (RFC 9051 §6.2.3). Tokens match
// whole and ASCII-case-insensitively. Every function returns std::nullopt / false when the
// line needs no change, so the caller relays the original bytes; a rewritten line keeps its
// terminator and every byte outside the removed tokens.

#include <optional>
#include <string>
#include <string_view>

namespace postern::protocols::capabilities {

// Removes the SP-separated tokens of `list` that match `denied` (each removed with one
// adjacent SP). std::nullopt when none matched.
[[nodiscard]] std::optional<std::string> remove_tokens(std::string_view list,
                                                       std::string_view denied_a,
                                                       std::string_view denied_b = {});

// IMAP: one response line (terminator included). Rewrites the untagged "* CAPABILITY ..."
// response (RFC 9051 §7.2.2) and a "[CAPABILITY ...]" response code (§7.1) right after the
// status word of an untagged or tagged OK/NO/BAD/PREAUTH/BYE.
[[nodiscard]] std::optional<std::string> filter_imap_line(std::string_view line);

// POP3: true when one line of a CAPA response (RFC 2449 §5) names STLS (RFC 2595 §4).
[[nodiscard]] bool is_pop3_stls(std::string_view line) noexcept;

// SMTP: true when one line of an EHLO reply (RFC 5321 §4.1.1.1) names STARTTLS
// (RFC 3207 §4), e.g. "250-STARTTLS\r\n".
[[nodiscard]] bool is_smtp_starttls(std::string_view line) noexcept;

}  // namespace postern::protocols::capabilities
