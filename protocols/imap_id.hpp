#pragma once
// The IMAP ID command (RFC 2971) as postern lets it through: a trusted proxy tells Dovecot who
// the client is with ID fields ("x-originating-ip", ...; Dovecot's imap-login-cmd-id.c), and a
// backend that trusts postern's address would believe a client that sent them itself. So every
// such field is taken out of a client's ID before it reaches the backend; the other fields pass
// byte for byte.
//
// The grammar read (RFC 2971 §3, strings as RFC 9051 §4.3): tag SP "ID" SP ("NIL" / "("
// [string SP nstring *(SP string SP nstring)] ")"), where a string here is a quoted string
// (escapes: \" and \\ only) and nstring adds NIL; runs of SP are accepted between tokens.
// Literals are not read here: the machine refuses an ID that carries one (imap.cpp), since
// real clients never send one and rewriting one safely would mean holding its bytes.
// Invariant: a line rewritten keeps the client's tag, verb, pairs and terminator as they were.

#include <cstdint>
#include <string>
#include <string_view>

namespace postern::protocols::imap_id {

// True for the names only a trusted proxy may send (ASCII case-insensitive): x-originating-*,
// x-connected-*, x-forward-* (any suffix), x-proxy-ttl, x-session-id, x-session-ext-id,
// x-client-transport (Dovecot takes it as the client's TLS state) and x-multiplex (Dovecot
// would switch its output to a framing postern cannot follow).
[[nodiscard]] bool is_forwarding_field(std::string_view name) noexcept;

struct Filtered {
    enum class Verdict : std::uint8_t {
        Unchanged,  // forward the line as it is
        Rewritten,  // forward `line` instead
        Invalid,    // not an ID command we can read: answer BAD, forward nothing
    };
    Verdict verdict = Verdict::Invalid;
    std::string line;
};

// `line`: one complete client line (terminator included) without a literal, whose second word
// is ID. A list left empty becomes NIL.
[[nodiscard]] Filtered filter_command(std::string_view line);

}  // namespace postern::protocols::imap_id
