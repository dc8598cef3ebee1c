#pragma once
// Pure filters for what a backend offers before it reaches a client, the one place that says
// which offers postern withholds:
//  - the STARTTLS/STLS offer (and IMAP's LOGINDISABLED) of a plaintext backend, since the client
//    is on TLS already: it would try a TLS-in-TLS upgrade (RFC 2595 §3.1, RFC 3207 §4.2), and
//    LOGINDISABLED only reflects the backend's plaintext view (RFC 9051 §6.2.3);
//  - every login offer (IMAP AUTH=, with LOGINDISABLED added) made to a client still in
//    plaintext: postern refuses credentials before TLS, whatever the backend would accept;
//  - the client-identity commands (SMTP XCLIENT and XFORWARD, Postfix XCLIENT_README and
//    XFORWARD_README; POP3 XCLIENT, Dovecot): a backend offers them to postern because it trusts
//    postern's address, and postern refuses them to clients (no spoofing), so none is advertised.
// Tokens match whole and ASCII-case-insensitively. Every function returns std::nullopt / false
// when the line needs no change, so the caller relays the original bytes; a rewritten line keeps
// its terminator and every byte outside the removed tokens.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::protocols::capabilities {

// Removes the SP-separated tokens of `list` that match `denied` (each removed with one
// adjacent SP). std::nullopt when none matched.
[[nodiscard]] std::optional<std::string> remove_tokens(std::string_view list,
                                                       std::string_view denied_a,
                                                       std::string_view denied_b = {});

// SMTP and POP3: true when a client's command verb is one postern refuses, never forwards:
// XCLIENT, XFORWARD, and XOIP (Dovecot's POP3 alias of "XCLIENT ADDR=", for Zimbra's nginx).
[[nodiscard]] bool is_identity_command(std::string_view verb) noexcept;

// Who reads an IMAP capability list: a client on TLS (STARTTLS and LOGINDISABLED removed), or
// the plaintext client of a STARTTLS listener with require_tls = false, which postern never lets
// log in before TLS (STARTTLS and every AUTH= removed, LOGINDISABLED added: RFC 9051 §6.2.3).
enum class ImapReader : std::uint8_t { Tls, Plaintext };

// IMAP: one response line (terminator included). Rewrites the untagged "* CAPABILITY ..."
// response (RFC 9051 §7.2.2) and a "[CAPABILITY ...]" response code (§7.1) right after the
// status word of an untagged or tagged OK/NO/BAD/PREAUTH/BYE.
[[nodiscard]] std::optional<std::string> filter_imap_line(std::string_view line,
                                                          ImapReader reader = ImapReader::Tls);

// POP3: true when one line of a CAPA response (RFC 2449 §5) names STLS (RFC 2595 §4), XCLIENT
// or XFORWARD; with `plaintext_client`, USER and SASL too: a client that is not on TLS is never
// offered to send credentials.
[[nodiscard]] bool is_pop3_withheld(std::string_view line, bool plaintext_client) noexcept;

// POP3: the greeting without Dovecot's "[XCLIENT]" response code (RFC 2449 §8 puts codes right
// after "+OK "), which it sends to the hosts it trusts: "+OK [XCLIENT] Dovecot ready.".
[[nodiscard]] std::optional<std::string> filter_pop3_greeting(std::string_view line);

// POP3: true when the greeting carries "[XCLIENT]": Dovecot accepts XCLIENT from us. One that
// does not trust us answers XCLIENT with "+OK ... ignoring", so the greeting is the only sign.
[[nodiscard]] bool pop3_greeting_offers_xclient(std::string_view line) noexcept;

// SMTP: true when one line of an EHLO reply (RFC 5321 §4.1.1.1) names STARTTLS (RFC 3207 §4),
// XCLIENT or XFORWARD, e.g. "250-STARTTLS\r\n"; with `plaintext_client`, AUTH (RFC 4954 §3) and
// the old "AUTH=" form too: a client that is not on TLS is never offered to send credentials.
[[nodiscard]] bool is_smtp_withheld(std::string_view line, bool plaintext_client) noexcept;

// SMTP STARTTLS listeners: true when one extension line of the backend's EHLO reply (without
// "250-") may be repeated by postern to a plaintext client: printable ASCII only (backend text
// must not smuggle a CR/LF or a second reply into ours), short enough for one reply line
// (RFC 5321 §4.5.3.1.5), not withheld (postern offers its own STARTTLS, last), and no AUTH:
// credentials wait for TLS whatever require_tls says (RFC 3207 §4.1, NO STARTTLS §8), since the
// backend cannot tell a client on TLS from one in plaintext (both reach it from postern).
[[nodiscard]] bool smtp_advertisable(std::string_view extension) noexcept;

}  // namespace postern::protocols::capabilities
