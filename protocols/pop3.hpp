#pragma once
// POP3 relay machine (RFC 1939, RFC 2449 CAPA/PIPELINING, RFC 5034 AUTH) for the
// AUTHORIZATION state. It relays the greeting (-ERR: refuse), forwards commands unchanged,
// answers STLS itself (RFC 2595 §4), drops the STLS line from CAPA responses, and hands over
// to Passthrough on the +OK to PASS, APOP or AUTH. Replies carry no tag, so it keeps the kinds
// of forwarded commands in order to know which replies are multi-line (ending in ".",
// dot-stuffed; RFC 1939 §3) and which one completes authentication; a bare AUTH, whose reply
// no RFC frames, is answered by postern from the SASL line of the last CAPA it relayed. On
// STARTTLS listeners it first answers CAPA, STLS and QUIT itself, refuses USER/PASS/APOP/AUTH
// with [AUTH] before TLS whatever require_tls says (and still, never forwarded, on a session
// that went on in plaintext, whose CAPA replies lose USER and SASL), and drops the backend's
// greeting after TLS (so APOP, which needs that greeting's timestamp, cannot work through a
// STARTTLS listener).

#include "protocols/machine.hpp"

#include <memory>

namespace postern::protocols {

[[nodiscard]] std::unique_ptr<Machine> make_pop3_machine(const MachineSettings& settings);

}  // namespace postern::protocols
