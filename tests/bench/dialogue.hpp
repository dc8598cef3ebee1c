#pragma once
// The mail dialogues the load generator speaks, as data, with no I/O: a connection runs a
// Script (send a command, wait for a reply of a given shape, start TLS) and then sends
// Requests; a ReplyReader finds where each reply ends. Replies are recognised by shape only:
//   IMAP  tagged completion line (RFC 9051 §2.2.2); literals {n} are skipped by count (§4.3),
//         so a bulk payload is never scanned for line ends;
//   POP3  "+OK" line, or a multi-line response ending in "." (RFC 1939 §3);
//   SMTP  the reply line with a space after the code (RFC 5321 §4.2.1).
// The backend fixture (backend_main.cpp) answers every command used here, and accepts any user.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::bench {

enum class Protocol : std::uint8_t { Imap, Pop3, Smtp };
enum class TlsMode : std::uint8_t { None, Implicit, StartTls };

enum class ReplyShape : std::uint8_t { ImapGreeting, ImapTagged, Pop3Line, Pop3Multi, SmtpReply };

struct Expectation {
    ReplyShape shape = ReplyShape::ImapGreeting;
    std::string tag;  // ImapTagged only
};

struct Step {
    enum class Kind : std::uint8_t { Send, Expect, StartTls };
    Kind kind = Kind::Send;
    std::string text;  // Send: the bytes
    Expectation expect;
};
using Script = std::vector<Step>;

// From TCP connect to a session ready for commands. Implicit TLS handshakes first and reads the
// greeting. STARTTLS reads the greeting, asks for TLS (SMTP after EHLO), handshakes, and proves
// the TLS session with one command answered over it (IMAP NOOP, POP3 CAPA, SMTP EHLO).
[[nodiscard]] Script connect_script(Protocol protocol, TlsMode tls);

// Appends a login: IMAP LOGIN, POP3 USER/PASS, SMTP EHLO (unless STARTTLS sent one) and
// AUTH PLAIN. After it, a proxy that relays mail protocols is in its pass-through state.
void append_login(Script& script, Protocol protocol, TlsMode tls);

struct Request {
    std::string command;
    Expectation expect;
};

// A NOOP (answered by every server in every state used here).
[[nodiscard]] Request noop_request(Protocol protocol, std::uint64_t seq);
// The fixture's XBULK command: an IMAP literal, or a POP3 multi-line body, of `bytes` payload.
// Nullopt for SMTP, which has no way to send bulk data to the client.
[[nodiscard]] std::optional<Request> bulk_request(Protocol protocol, std::uint64_t seq,
                                                  std::uint64_t bytes);

[[nodiscard]] std::string_view to_string(Protocol protocol) noexcept;
[[nodiscard]] std::string_view to_string(TlsMode tls) noexcept;

// Finds where one reply ends. Never reads past the end of the reply it waits for, so bytes of a
// pipelined next reply are left to the caller.
class ReplyReader {
public:
    enum class Status : std::uint8_t { NeedMore, Done, Failed };
    struct Result {
        Status status = Status::NeedMore;
        std::size_t used = 0;  // bytes of `data` that belong to this reply
    };

    // Starts waiting for a new reply; forgets the previous one.
    void expect(Expectation expectation);

    // Consumes bytes of the awaited reply. Failed: the reply is an error (-ERR, NO/BAD, 4xx/5xx),
    // malformed, or a line exceeds 64 KiB; error() says which line.
    [[nodiscard]] Result feed(std::string_view data);

    // Payload bytes seen in this reply: IMAP literal bytes, POP3 multi-line body bytes.
    [[nodiscard]] std::uint64_t payload() const noexcept { return payload_; }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

private:
    Status on_line(std::string_view line);
    Status fail(std::string_view line);

    Expectation expect_;
    std::string partial_;             // an incomplete line carried between feeds
    std::uint64_t literal_left_ = 0;  // IMAP literal bytes still to skip
    bool continuing_ = false;         // IMAP: the logical line goes on after a literal
    bool tagged_ = false;             // IMAP: the current logical line is the tagged one
    bool tagged_ok_ = false;
    bool body_ = false;  // POP3 multi-line: past the +OK line
    std::uint64_t payload_ = 0;
    std::string error_;
};

}  // namespace postern::bench
