#pragma once
// Forwarding the client's identity to a backend that trusts postern (backend option
// `xclient = true`): the command each protocol's servers read it from, sent by the machine
// after the backend's greeting and before any client byte (RelayMachine's Phase::Forwarding).
//  - SMTP: XCLIENT (Postfix XCLIENT_README; Dovecot's submission reads it too): attribute values
//    are xtext (RFC 3461 §4), an IPv6 address is written "IPV6:2001:db8::1", and NAME is
//    [UNAVAILABLE] since postern does no forward-confirmed reverse lookup. Postfix accepts it
//    before EHLO and answers 220 with a fresh greeting; 550 when it does not trust us.
//  - POP3: XCLIENT as Dovecot's pop3-login reads it (plain values, "+OK" or "-ERR"); Dovecot
//    offers it only to the hosts it trusts, with "[XCLIENT]" in its greeting.
//  - IMAP: ID with Dovecot's x-originating-ip/-port and x-connected-ip/-port fields, under
//    postern's own tag; untagged "* ID" lines, then the tagged OK.
// Pure: the identity comes from the session, which built it from the accepted socket's numeric
// addresses; nothing here parses or validates addresses.

#include "protocols/protocol.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace postern::protocols {

struct ClientIdentity {         // built only from validated data (numeric addresses)
    std::string address;        // "203.0.113.7" or "2001:db8::1" (no brackets)
    std::uint16_t port = 0;     // 0: unknown, left out (SMTP: [UNAVAILABLE])
    std::string local_address;  // the address the client connected to; may be empty
    std::uint16_t local_port = 0;
};

namespace forwarding {

// The tag of postern's own IMAP ID; the client never sees its responses.
inline constexpr std::string_view kImapTag = "postern";

// RFC 3461 §4 xtext: "+" and "=" and every byte outside "!".."~" as "+XX" (upper-case hex).
[[nodiscard]] std::string xtext(std::string_view value);

// "XCLIENT ADDR=203.0.113.7 PORT=40000 NAME=[UNAVAILABLE]\r\n"
[[nodiscard]] std::string smtp_xclient(const ClientIdentity& identity);
// "XCLIENT ADDR=203.0.113.7 PORT=40000 DESTADDR=192.0.2.1 DESTPORT=995\r\n": newer Dovecot
// reads DESTADDR/DESTPORT for its local_ip/local_port; 2.3.19 (Debian 12) skips them, as it
// skips any attribute it does not know, and logs its own listener as lip/lport.
[[nodiscard]] std::string pop3_xclient(const ClientIdentity& identity);
// "postern ID (\"x-originating-ip\" \"203.0.113.7\" \"x-originating-port\" \"40000\"
// \"x-connected-ip\" \"192.0.2.1\" \"x-connected-port\" \"993\")\r\n"
[[nodiscard]] std::string imap_id(const ClientIdentity& identity);

// The command for `protocol`, one of the three above.
[[nodiscard]] std::string command(Protocol protocol, const ClientIdentity& identity);

}  // namespace forwarding

}  // namespace postern::protocols
