#pragma once
// IMAP relay machine (RFC 9051, RFC 3501) for the not-authenticated state. It relays the
// backend greeting (BYE: refuse; PREAUTH: Passthrough), forwards client commands unchanged,
// answers STARTTLS itself, strips STARTTLS/LOGINDISABLED from CAPABILITY responses and
// response codes, and hands over to Passthrough when a LOGIN or AUTHENTICATE gets its own
// tagged OK: commands are tracked in order, so a reused tag cannot lend it an earlier command's
// (imap_commands.hpp). Literals ({n}, {n+}, ~{n}; RFC 9051 §4.3, RFC 7888) are relayed as raw
// bytes and never parsed as lines, and only where the grammar has them: a status response
// ending in "{n}" is text (imap_syntax.hpp). AUTHENTICATE continuations (§6.2.2) are counted so
// a pipelined command after a SASL exchange is still seen as a command. On STARTTLS listeners
// (RFC 2595) it first offers its own not-authenticated state (CAPABILITY, NOOP, LOGOUT,
// STARTTLS; LOGINDISABLED, and NO [PRIVACYREQUIRED] to LOGIN and AUTHENTICATE) and drops the
// backend's greeting after TLS; a PREAUTH backend cannot be served there and is refused. A
// client that goes on in plaintext (require_tls = false) is relayed, but its LOGIN and
// AUTHENTICATE never are: credentials cross only inside TLS, and the capability lists it sees
// say so.

#include "protocols/machine.hpp"

#include <memory>

namespace postern::protocols {

[[nodiscard]] std::unique_ptr<Machine> make_imap_machine(const MachineSettings& settings);

}  // namespace postern::protocols
