#pragma once
// Every reply postern writes to a client itself, in one place, with the RFC it follows.
// Backend replies are relayed, never rewritten, except for the capability filters in
// capabilities.hpp. Texts stay short and neutral: they are logged by clients and seen by users.

#include <string>
#include <string_view>

namespace postern::protocols::replies {

// IMAP (RFC 9051). BYE announces that the server closes (§7.1.5); UNAVAILABLE is RFC 5530 §3.
inline constexpr std::string_view kImapBackendUnavailable =
    "* BYE [UNAVAILABLE] Backend server unavailable, try again later\r\n";
inline constexpr std::string_view kImapLineTooLong = "* BAD Line too long\r\n";
inline constexpr std::string_view kImapBadLiteral = "* BAD Literal too large\r\n";
inline constexpr std::string_view kImapNulByte = "* BAD NUL byte in command\r\n";
inline constexpr std::string_view kImapProtocolError = "* BAD Protocol error\r\n";
// Completes the client's own tag: "<tag> BAD TLS is already active" (§6.2.1: STARTTLS is
// only valid before TLS; the client is on implicit TLS or has already upgraded).
inline constexpr std::string_view kImapTlsActiveAfterTag = " BAD TLS is already active\r\n";

// POP3 (RFC 1939 §3). SYS/TEMP is RFC 3206 §4; STLS is RFC 2595 §4.
inline constexpr std::string_view kPop3BackendUnavailable =
    "-ERR [SYS/TEMP] Backend server unavailable, try again later\r\n";
inline constexpr std::string_view kPop3LineTooLong = "-ERR Line too long\r\n";
inline constexpr std::string_view kPop3NulByte = "-ERR NUL byte in command\r\n";
inline constexpr std::string_view kPop3TlsActive = "-ERR TLS is already active\r\n";

// SMTP (RFC 5321 §4.2.2 codes, RFC 3463 enhanced status codes).
// 500 5.5.2: "syntax error, command unrecognized" covers a line over the limit (§4.5.3.1.4).
inline constexpr std::string_view kSmtpLineTooLong = "500 5.5.2 Line too long\r\n";
inline constexpr std::string_view kSmtpNulByte = "500 5.5.2 NUL byte in command\r\n";
inline constexpr std::string_view kSmtpBadChunkSize = "501 5.5.4 Invalid BDAT chunk size\r\n";
// RFC 3207 defines no reply for a second STARTTLS; 503 "bad sequence of commands" fits
// (Postfix answers "554 5.5.1 Error: TLS already active").
inline constexpr std::string_view kSmtpTlsActive = "503 5.5.1 TLS already active\r\n";

// 421 "<domain> Service not available, closing transmission channel" (RFC 5321 §4.2.3);
// 4.3.0 "other or undefined mail system status" (RFC 3463 §3.4). The domain is left out when
// postern has no hostname configured.
[[nodiscard]] inline std::string smtp_backend_unavailable(std::string_view hostname) {
    std::string reply = "421 4.3.0 ";
    if (!hostname.empty()) {
        reply.append(hostname).push_back(' ');
    }
    reply.append("Service not available, try again later\r\n");
    return reply;
}

}  // namespace postern::protocols::replies
