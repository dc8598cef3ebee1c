#pragma once
// Every reply postern writes to a client itself, in one place, with the RFC it follows.
// Backend replies are relayed, never rewritten, except for the capability filters in
// capabilities.hpp. Texts stay short and neutral: they are logged by clients and seen by users.
// Before TLS on a STARTTLS listener postern speaks for itself: nothing from the backend, no
// PREAUTH and no [ALERT] ever reaches a plaintext client (NO STARTTLS, USENIX Security 2021).
// "...AfterTag" texts complete the client's own IMAP tag, which the caller writes first.

#include "protocols/protocol.hpp"

#include <string>
#include <string_view>

namespace postern::protocols::replies {

namespace detail {

// "<prefix><hostname> <suffix>", or "<prefix><suffix>" without a hostname.
[[nodiscard]] inline std::string with_host(std::string_view prefix, std::string_view hostname,
                                           std::string_view suffix) {
    std::string reply(prefix);
    if (!hostname.empty()) {
        reply.append(hostname).push_back(' ');
    }
    reply.append(suffix);
    return reply;
}

}  // namespace detail

// A reply postern writes itself that may name its host: SMTP's 421 replies start with the
// domain (RFC 5321 §4.2.3), left out when postern has no hostname configured.
struct Canned {
    std::string_view head;       // the whole reply, or what comes before the hostname
    std::string_view tail = {};  // what follows "<hostname> "; empty: the reply names no host

    [[nodiscard]] std::string text(std::string_view hostname) const {
        return tail.empty() ? std::string(head) : detail::with_host(head, hostname, tail);
    }
};

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
// A STARTTLS listener whose client went on in plaintext (require_tls = false): the backend has
// seen plaintext commands, so upgrading now would carry their state into TLS (session
// fixation, NO STARTTLS §6.2); BAD is the only refusal §6.2.1 lists.
inline constexpr std::string_view kImapTlsUnavailableAfterTag = " BAD TLS is not available now\r\n";
inline constexpr std::string_view kImapJunk = "* BAD Invalid characters in command\r\n";
// A client's ID that postern cannot read, so cannot clear of forwarding fields (imap_id.hpp):
// Dovecot's own text for an ID it cannot parse.
inline constexpr std::string_view kImapIdInvalidAfterTag = " BAD Invalid ID parameters\r\n";
inline constexpr std::string_view kImapIdLiteralAfterTag =
    " BAD Literals in ID are not supported\r\n";
inline constexpr std::string_view kImapTooManyErrors = "* BYE Too many invalid commands\r\n";
// Said when the session closes for idling (RFC 9051 §7.1.5).
inline constexpr std::string_view kImapTimeout = "* BYE Autologout; idle for too long\r\n";
// postern is stopping (proxy/drain.hpp): an untagged BYE may come at any time (RFC 9051
// §7.1.5, RFC 3501 §7.1.5), UNAVAILABLE as RFC 5530 §3.
inline constexpr Canned kImapShutdown{"* BYE [UNAVAILABLE] ", "shutting down\r\n"};

// IMAP before TLS (RFC 9051 §6.2.1, RFC 2595 §3.1). LOGINDISABLED (§6.2.3) whatever
// require_tls says: credentials never cross in plaintext, and the backend, which sees every
// connection come from postern, cannot tell; PRIVACYREQUIRED is RFC 5530 §3.
inline constexpr std::string_view kImapPreTlsCapabilities = "IMAP4rev1 STARTTLS LOGINDISABLED";
[[nodiscard]] inline std::string imap_greeting(std::string_view hostname) {
    return detail::with_host("* OK [CAPABILITY " + std::string(kImapPreTlsCapabilities) + "] ",
                             hostname, "IMAP4 ready\r\n");
}
inline constexpr std::string_view kImapStartTlsAfterTag = " OK Begin TLS negotiation now\r\n";
inline constexpr std::string_view kImapCapabilityAfterTag = " OK CAPABILITY completed\r\n";
inline constexpr std::string_view kImapNoopAfterTag = " OK NOOP completed\r\n";
inline constexpr std::string_view kImapLogoutBye = "* BYE Logging out\r\n";
inline constexpr std::string_view kImapLogoutAfterTag = " OK LOGOUT completed\r\n";
inline constexpr std::string_view kImapPrivacyRequiredAfterTag =
    " NO [PRIVACYREQUIRED] Use STARTTLS first\r\n";
inline constexpr std::string_view kImapNotBeforeTlsAfterTag =
    " BAD Unknown command or not allowed before STARTTLS\r\n";
inline constexpr std::string_view kImapArgumentsAfterTag = " BAD Unexpected arguments\r\n";
inline constexpr std::string_view kImapMissingCommandAfterTag = " BAD Missing command\r\n";
inline constexpr std::string_view kImapBadTag = "* BAD Invalid tag\r\n";

// POP3 (RFC 1939 §3). SYS/TEMP is RFC 3206 §4; STLS is RFC 2595 §4.
inline constexpr std::string_view kPop3BackendUnavailable =
    "-ERR [SYS/TEMP] Backend server unavailable, try again later\r\n";
inline constexpr std::string_view kPop3LineTooLong = "-ERR Line too long\r\n";
inline constexpr std::string_view kPop3NulByte = "-ERR NUL byte in command\r\n";
inline constexpr std::string_view kPop3TlsActive = "-ERR TLS is already active\r\n";
inline constexpr std::string_view kPop3TlsUnavailable = "-ERR TLS is not available now\r\n";
inline constexpr std::string_view kPop3Junk = "-ERR Invalid characters in command\r\n";
inline constexpr std::string_view kPop3TooManyErrors = "-ERR Too many invalid commands\r\n";
inline constexpr std::string_view kPop3Timeout = "-ERR Autologout; idle for too long\r\n";

// POP3 before TLS (RFC 2595 §4, RFC 2449 CAPA, RFC 3206 [AUTH]). Neither USER nor SASL is
// offered, whatever require_tls says: credentials wait for TLS. No APOP timestamp: postern never
// holds the backend's, so APOP cannot work through a STARTTLS listener.
[[nodiscard]] inline std::string pop3_greeting(std::string_view hostname) {
    return detail::with_host("+OK ", hostname, "POP3 ready\r\n");
}
inline constexpr std::string_view kPop3PreTlsCapa =
    "+OK Capability list follows\r\nSTLS\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n";
inline constexpr std::string_view kPop3StartTls = "+OK Begin TLS negotiation\r\n";
inline constexpr std::string_view kPop3Quit = "+OK Logging out\r\n";
inline constexpr std::string_view kPop3PrivacyRequired =
    "-ERR [AUTH] Plaintext authentication disallowed, use STLS first\r\n";
inline constexpr std::string_view kPop3Unknown = "-ERR Unknown command\r\n";
inline constexpr std::string_view kPop3Arguments = "-ERR Unexpected arguments\r\n";
// A bare AUTH (mechanism list, not in RFC 5034) before postern has relayed the backend's CAPA
// with its SASL line: postern answers it itself and cannot list what it does not know.
inline constexpr std::string_view kPop3AuthMechanismUnknown =
    "-ERR Name a SASL mechanism (CAPA lists them)\r\n";
// A client's XCLIENT/XOIP (capabilities::is_identity_command): Dovecot answers a host it does not
// trust with "+OK ... ignoring"; a plain -ERR says the command did nothing.
inline constexpr std::string_view kPop3NotPermitted = "-ERR Command not permitted\r\n";

// SMTP (RFC 5321 §4.2.2 codes, RFC 3463 enhanced status codes).
// 500 5.5.2: "syntax error, command unrecognized" covers a line over the limit (§4.5.3.1.4).
inline constexpr std::string_view kSmtpLineTooLong = "500 5.5.2 Line too long\r\n";
inline constexpr std::string_view kSmtpNulByte = "500 5.5.2 NUL byte in command\r\n";
inline constexpr std::string_view kSmtpBadChunkSize = "501 5.5.4 Invalid BDAT chunk size\r\n";
// BDAT to a backend that did not offer CHUNKING (RFC 3030 §2): 502 "command not implemented"
// (RFC 5321 §4.2.4) in Postfix's words. Postfix itself says 521 and hangs up, as it cannot tell
// where the chunk ends; postern has read the size, drops the chunk and goes on.
inline constexpr std::string_view kSmtpNotImplemented =
    "502 5.5.1 Error: command not implemented\r\n";
// RFC 3207 defines no reply for a second STARTTLS; 503 "bad sequence of commands" fits
// (Postfix answers "554 5.5.1 Error: TLS already active").
inline constexpr std::string_view kSmtpTlsActive = "503 5.5.1 TLS already active\r\n";
// RFC 3207 §4: 454 "TLS not available due to temporary reason"; here because the client went on
// in plaintext and the backend has seen its commands (require_tls = false).
inline constexpr std::string_view kSmtpTlsUnavailable = "454 4.7.0 TLS not available\r\n";
inline constexpr std::string_view kSmtpJunk = "500 5.5.2 Invalid characters in command\r\n";

// SMTP before TLS (RFC 5321 §4.1.1, RFC 3207 §4 and §4.1 for 530 and 501).
[[nodiscard]] inline std::string smtp_greeting(std::string_view hostname) {
    return detail::with_host("220 ", hostname, "ESMTP ready\r\n");
}
inline constexpr std::string_view kSmtpStartTls = "220 2.0.0 Ready to start TLS\r\n";
inline constexpr std::string_view kSmtpOk = "250 2.0.0 Ok\r\n";
inline constexpr std::string_view kSmtpHelp = "214 2.0.0 Ok\r\n";
inline constexpr std::string_view kSmtpQuit = "221 2.0.0 Bye\r\n";
inline constexpr std::string_view kSmtpMustStartTls =
    "530 5.7.0 Must issue a STARTTLS command first\r\n";
inline constexpr std::string_view kSmtpEhloSyntax = "501 5.5.4 Syntax: EHLO hostname\r\n";
inline constexpr std::string_view kSmtpHeloSyntax = "501 5.5.4 Syntax: HELO hostname\r\n";
inline constexpr std::string_view kSmtpStartTlsSyntax = "501 5.5.4 Syntax: STARTTLS\r\n";
inline constexpr std::string_view kSmtpBadSyntax = "500 5.5.2 Error: bad syntax\r\n";
inline constexpr std::string_view kSmtpUnknown = "502 5.5.2 Error: command not recognized\r\n";
// A client's XCLIENT/XFORWARD (capabilities::is_identity_command), in every phase: Postfix's own
// answer to a client it does not authorize (XCLIENT_README's 550 "insufficient authorization").
inline constexpr std::string_view kSmtpNotPermitted =
    "550 5.7.0 Error: insufficient authorization\r\n";

// 421 closes the channel (RFC 5321 §3.8); 4.7.0 as Postfix's smtpd_hard_error_limit answer.
inline constexpr Canned kSmtpTooManyErrors{"421 4.7.0 ", "Error: too many errors\r\n"};
// 421 "<domain> Service not available, closing transmission channel" (RFC 5321 §4.2.3);
// 4.3.0 "other or undefined mail system status" (RFC 3463 §3.4).
inline constexpr Canned kSmtpBackendUnavailable{"421 4.3.0 ",
                                                "Service not available, try again later\r\n"};
// The session closes for idling: 421 4.4.2 "connection dropped" (RFC 5321 §4.5.3.2, RFC 3463
// §3.5).
inline constexpr Canned kSmtpTimeout{"421 4.4.2 ", "Error: timeout exceeded\r\n"};
// postern is stopping: 421 closes the channel (RFC 5321 §3.8), 4.3.2 "system not accepting
// network messages" (RFC 3463 §3.4).
inline constexpr Canned kSmtpShutdown{"421 4.3.2 ", "Service shutting down\r\n"};

[[nodiscard]] inline std::string smtp_backend_unavailable(std::string_view hostname) {
    return kSmtpBackendUnavailable.text(hostname);
}

// What the parts every protocol shares write to a client in that protocol: the line discipline
// and the backend-failure reply (relay_machine.cpp), the idle timeout (the session, after the
// machine is gone). One table per protocol, as nginx's mail modules keep their canned replies
// as data beside their protocol descriptor.
struct ProtocolReplies {
    Canned line_too_long;
    Canned nul_byte;
    Canned junk;  // a control byte, or an 8-bit byte where the command must be ASCII
    Canned too_many_errors;
    Canned backend_unavailable;
    Canned timeout;
    Canned drain_goodbye;  // replies::drain_goodbye()
};

inline constexpr ProtocolReplies kImap{
    .line_too_long = {kImapLineTooLong},
    .nul_byte = {kImapNulByte},
    .junk = {kImapJunk},
    .too_many_errors = {kImapTooManyErrors},
    .backend_unavailable = {kImapBackendUnavailable},
    .timeout = {kImapTimeout},
    .drain_goodbye = kImapShutdown,
};
inline constexpr ProtocolReplies kPop3{
    .line_too_long = {kPop3LineTooLong},
    .nul_byte = {kPop3NulByte},
    .junk = {kPop3Junk},
    .too_many_errors = {kPop3TooManyErrors},
    .backend_unavailable = {kPop3BackendUnavailable},
    .timeout = {kPop3Timeout},
    .drain_goodbye = {},  // none: see drain_goodbye()
};
inline constexpr ProtocolReplies kSmtp{
    .line_too_long = {kSmtpLineTooLong},
    .nul_byte = {kSmtpNulByte},
    .junk = {kSmtpJunk},
    .too_many_errors = kSmtpTooManyErrors,
    .backend_unavailable = kSmtpBackendUnavailable,
    .timeout = kSmtpTimeout,
    .drain_goodbye = kSmtpShutdown,
};

[[nodiscard]] constexpr const ProtocolReplies& of(Protocol protocol) noexcept {
    switch (protocol) {
        case Protocol::Imap:
            return kImap;
        case Protocol::Pop3:
            return kPop3;
        case Protocol::Smtp:
            return kSmtp;
    }
    return kImap;
}

// Said to a client whose session the proxy closes for idling (the session's timers).
[[nodiscard]] inline std::string timeout_reply(Protocol protocol, std::string_view hostname) {
    return of(protocol).timeout.text(hostname);
}

// What a stopping postern (proxy/drain.hpp) says as it ends a session, quiet between commands
// or still busy at shutdown_timeout or a second signal. IMAP's BYE and SMTP's 421 may
// come unasked; POP3 has no unsolicited response (RFC 1939 §3), so its client is just closed
// (a session closed before QUIT never enters the UPDATE state: nothing is deleted, §6).
[[nodiscard]] inline std::string drain_goodbye(Protocol protocol, std::string_view hostname) {
    return of(protocol).drain_goodbye.text(hostname);
}

// Said instead of the greeting to a connection over one of the connection limits
// (proxy/client_limits.hpp), then closed; STARTTLS listeners only: an implicit-TLS listener
// closes before the handshake, without a byte. IMAP: a BYE greeting (RFC 9051 §7.1.5) with
// UNAVAILABLE (RFC 5530 §3); POP3: -ERR with SYS/TEMP (RFC 3206 §4); SMTP: 421 closes the
// channel (RFC 5321 §3.8), 4.7.0 (policy, RFC 3463 §3.8) for a client over its own limits as
// Postfix's anvil answers, 4.3.2 "system not accepting network messages" (RFC 3463 §3.4: excessive
// load) when postern as a whole is full.
struct LimitReplies {
    Canned client_sessions;  // max_sessions_per_client
    Canned client_rate;      // max_new_per_client
    Canned sessions;         // max_sessions
};

inline constexpr LimitReplies kImapLimits{
    .client_sessions = {"* BYE [UNAVAILABLE] Too many connections from your address, try again "
                        "later\r\n"},
    .client_rate = {"* BYE [UNAVAILABLE] Too many new connections from your address, try again "
                    "later\r\n"},
    .sessions = {"* BYE [UNAVAILABLE] Too many connections, try again later\r\n"},
};
inline constexpr LimitReplies kPop3Limits{
    .client_sessions = {"-ERR [SYS/TEMP] Too many connections from your address, try again "
                        "later\r\n"},
    .client_rate = {"-ERR [SYS/TEMP] Too many new connections from your address, try again "
                    "later\r\n"},
    .sessions = {"-ERR [SYS/TEMP] Too many connections, try again later\r\n"},
};
inline constexpr LimitReplies kSmtpLimits{
    .client_sessions = {"421 4.7.0 ",
                        "Too many connections from your address, try again later\r\n"},
    .client_rate = {"421 4.7.0 ",
                    "Too many new connections from your address, try again later\r\n"},
    .sessions = {"421 4.3.2 ", "Too many connections, try again later\r\n"},
};

[[nodiscard]] constexpr const LimitReplies& limits_of(Protocol protocol) noexcept {
    switch (protocol) {
        case Protocol::Imap:
            return kImapLimits;
        case Protocol::Pop3:
            return kPop3Limits;
        case Protocol::Smtp:
            return kSmtpLimits;
    }
    return kImapLimits;
}

}  // namespace postern::protocols::replies
