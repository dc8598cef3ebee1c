#pragma once
// SMTP relay machine (RFC 5321, RFC 2920 PIPELINING, RFC 3030 CHUNKING, RFC 4954 AUTH). SMTP
// has no "authenticated state" that forbids a later EHLO/STARTTLS, and MX traffic never
// authenticates, so this machine follows command/DATA/BDAT boundaries for the whole session:
// it answers STARTTLS itself, drops the STARTTLS line from every EHLO reply, and relays
// message content byte for byte in large chunks (never re-framing line endings: that is how
// "SMTP smuggling" differentials arise). The one hand-over is Passthrough after a 235 to AUTH:
// from then on it is the authenticated user's own session and bulk submission skips us.
// On STARTTLS listeners (RFC 3207) it first greets and answers EHLO itself, advertising the
// backend's own extensions (settings.smtp_extensions, filtered; AUTH only when TLS is not
// required) plus STARTTLS; 530 refuses mail and AUTH until TLS where TLS is required, and a
// public MX (require_tls = false) that never upgrades reaches the backend in plaintext with
// the client's EHLO/HELO replayed.

#include "protocols/machine.hpp"

#include <memory>

namespace postern::protocols {

[[nodiscard]] std::unique_ptr<Machine> make_smtp_machine(const MachineSettings& settings);

}  // namespace postern::protocols
