#pragma once
// SMTP relay machine (RFC 5321, RFC 2920 PIPELINING, RFC 3030 CHUNKING, RFC 4954 AUTH). SMTP
// has no "authenticated state" that forbids a later EHLO/STARTTLS, and MX traffic never
// authenticates, so this machine follows command/DATA/BDAT boundaries for the whole session and
// never hands over to Passthrough: it answers STARTTLS itself, drops the STARTTLS line from
// every EHLO reply, and relays message content in large chunks: BDAT byte for byte, DATA in the
// one form every backend frames as postern does (smtp_content.hpp: bare LF as CRLF, only
// CRLF.CRLF ends it), so no "SMTP smuggling" command passes postern as content.
// On STARTTLS listeners (RFC 3207) it first greets and answers EHLO itself, advertising the
// backend's own extensions (settings.smtp_extensions, filtered; never AUTH) plus STARTTLS. AUTH
// waits for TLS whatever require_tls says: 530 before TLS, and on a public MX
// (require_tls = false) whose client went on in plaintext (its EHLO/HELO replayed to the
// backend) AUTH is still answered 530 by postern, never forwarded, and withheld from the
// backend's EHLO replies; mail flows. Where TLS is required 530 refuses mail too.

#include "protocols/machine.hpp"

#include <memory>

namespace postern::protocols {

[[nodiscard]] std::unique_ptr<Machine> make_smtp_machine(const MachineSettings& settings);

}  // namespace postern::protocols
