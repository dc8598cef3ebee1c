#pragma once
// The client side of `postern probe`'s mail dialogue as a pure state machine: server lines in,
// commands and "start TLS now" out. No sockets and no OpenSSL, so every greeting and reply can
// be unit-tested. cli/probe/probe.cpp drives it over a socket.
//
// With STARTTLS it speaks the plaintext part: SMTP greeting, EHLO, STARTTLS (RFC 3207 §4), IMAP
// greeting, STARTTLS (RFC 9051 §6.2.1), POP3 greeting, STLS (RFC 2595 §4). After the handshake
// it reads the greeting (implicit TLS only; it also tells which protocol the port speaks), asks
// for the capabilities (EHLO, CAPABILITY, CAPA) and says goodbye (QUIT, LOGOUT).
// Invariants: it never asks to start TLS twice; every error is a sentence for the user that
// quotes at most kMaxQuoted bytes of server text (unsanitized: the caller escapes it).

#include "protocols/protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::cli::probe {

// The protocols' own enum, its names and its case-insensitive parser (protocols/protocol.hpp).
using protocols::Protocol;
using protocols::protocol_named;
using protocols::to_string;

// Which protocol a server greeting line belongs to: "* OK"/"* PREAUTH"/"* BYE" IMAP,
// "+OK"/"-ERR" POP3, three digits then SP, '-' or the end SMTP; nullopt for anything else.
[[nodiscard]] std::optional<Protocol> protocol_of_greeting(std::string_view line) noexcept;

// The atoms of an IMAP "[CAPABILITY ...]" response code in a greeting or tagged reply
// (RFC 9051 §7.1), or nullopt when the line carries none.
[[nodiscard]] std::optional<std::vector<std::string>> imap_response_capabilities(
    std::string_view line);

// What the driver does after feeding the machine.
enum class Then : std::uint8_t {
    Read,      // read the next line and pass it to on_line()
    StartTls,  // handshake now, then call on_tls_ready()
    Close,     // the dialogue is over: close the connection
    Fail,      // give up: Step::error says why; close the connection
};

struct Step {
    std::string send;  // whole CRLF-terminated command to write before doing `then`; may be empty
    Then then = Then::Read;
    std::string error;  // Then::Fail only
};

class Dialogue {
public:
    // Server text quoted in an error message is cut to this many bytes.
    static constexpr std::size_t kMaxQuoted = 200;
    // A reply with more lines than this is refused (no real server sends that many).
    static constexpr std::size_t kMaxReplyLines = 1000;

    // `starttls`: speak that protocol's plaintext dialogue before TLS. nullopt: implicit TLS,
    // and the protocol is learned from the greeting after the handshake. `ehlo_name` is the
    // domain or address literal sent in SMTP EHLO.
    Dialogue(std::optional<Protocol> starttls, std::string ehlo_name);

    // The first step: Read (wait for the plaintext greeting) or StartTls (implicit TLS).
    [[nodiscard]] Step start() const;
    // One server line without its CRLF (or bare LF).
    [[nodiscard]] Step on_line(std::string_view line);
    // The handshake asked for by Then::StartTls succeeded.
    [[nodiscard]] Step on_tls_ready();
    // The server closed the connection (or TLS said close_notify).
    [[nodiscard]] Step on_eof();

    // Known once the greeting has been read (from the start with STARTTLS).
    [[nodiscard]] std::optional<Protocol> protocol() const noexcept { return protocol_; }
    // After TLS: EHLO extension lines, IMAP capability atoms or CAPA lines, as the server wrote
    // them. Set when capabilities_read() is true.
    [[nodiscard]] const std::vector<std::string>& capabilities() const noexcept {
        return capabilities_;
    }
    [[nodiscard]] bool capabilities_read() const noexcept { return capabilities_read_; }
    // Why there are no capabilities although the dialogue went fine, e.g. a POP3 server
    // without CAPA (RFC 2449 is optional). Empty otherwise.
    [[nodiscard]] const std::string& capabilities_note() const noexcept {
        return capabilities_note_;
    }

private:
    enum class State : std::uint8_t {
        PlainGreeting,  // before TLS
        PlainEhlo,
        PlainStartTls,
        Handshake,     // waiting for on_tls_ready()
        TlsGreeting,   // implicit TLS: the first line after the handshake
        Capabilities,  // EHLO / CAPABILITY / CAPA reply
        CapaList,      // POP3 CAPA lines after its +OK
        Goodbye,       // QUIT / LOGOUT sent: any answer or EOF ends it
        Done,
    };

    [[nodiscard]] Step fail(std::string message);
    [[nodiscard]] Step fail_reply(std::string_view what, std::string_view line);
    [[nodiscard]] Step start_tls();
    [[nodiscard]] Step ask_capabilities();
    [[nodiscard]] Step goodbye();
    [[nodiscard]] Step on_smtp(std::string_view line);
    [[nodiscard]] Step on_imap(std::string_view line);
    [[nodiscard]] Step on_pop3(std::string_view line);

    std::optional<Protocol> starttls_;
    std::optional<Protocol> protocol_;
    std::string ehlo_name_;
    State state_;
    // the SMTP reply being read: its lines' texts and its code
    std::vector<std::string> reply_;
    int reply_code_ = 0;
    std::size_t reply_lines_ = 0;
    std::vector<std::string> greeting_capabilities_;  // IMAP [CAPABILITY] of a TLS greeting
    std::vector<std::string> capabilities_;
    bool capabilities_read_ = false;
    std::string capabilities_note_;
};

}  // namespace postern::cli::probe
