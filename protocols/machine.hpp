#pragma once
// A Machine is one session's mail dialogue as a pure state machine: bytes from the client or
// the backend in, Actions out. It never blocks, never touches a socket or OpenSSL, keeps its
// buffered input under the configured limits, and produces the same actions however the
// input is split into calls (one byte at a time or everything at once).
//
// Driving contract (protocols/driver.hpp runs it for proxy::Session, the tests and the fuzzers):
//  - on_bytes() consumes a prefix of `data` and returns its length; the caller keeps the rest
//    and offers it again, with more appended, on the next call. Returning 0 with no new
//    action means "nothing to do with these bytes yet" (for example client bytes while the
//    backend is not connected); the caller offers them again after the next event.
//  - After a Passthrough or Close action the machine consumes nothing more; bytes it did not
//    consume are relayed as-is (Passthrough) or dropped (Close).
//  - Client bytes may be held back (0 returned) until the backend has answered: before its
//    greeting, after SMTP DATA, during a SASL exchange, or a STARTTLS that must be answered
//    after replies still owed. on_bytes(Backend) may in turn stop after a line, with
//    complete lines left, so held client bytes are looked at first. So the session pumps:
//    after any call that consumed bytes, it offers the backend's and then the client's
//    leftovers again, until neither call consumes anything; leftovers then wait for more
//    bytes or an event. Backend bytes are never held back for the client's sake otherwise:
//    a live machine leaves fewer than max_backend_line of them unconsumed.
//  - SendToClient bytes before a Close are flushed to the client before closing.
//  - STARTTLS listeners (implicit_tls = false): the session creates the machine at accept and
//    sends ClientConnected; the machine answers with its own greeting and speaks for itself
//    until the client asks for TLS. The call that emits SendToClient(go-ahead) + StartTls has
//    consumed exactly through the STARTTLS/STLS line: the session drops every client byte it
//    holds after it, and the machine swallows (never acts on) any offered before TlsReady.
//    TlsReady is then answered with ConnectBackend, as on implicit TLS; the backend's greeting
//    is read but not relayed (the client had postern's), unless it refuses us.
//  - Forwarding the client's identity (protocols/forwarding.hpp): the session calls
//    forward_identity() before it delivers BackendReady. Once the backend's greeting is read,
//    the machine sends the protocol's forwarding command (SMTP/POP3 XCLIENT, IMAP ID) and reads
//    the reply itself; client bytes stay held back (0 returned) until the exchange is over, and
//    the client sees neither the command nor the reply: on implicit TLS exactly one greeting,
//    the backend's, relayed once the exchange succeeded. A refusal closes with the protocol's
//    "backend unavailable" reply and CloseReason::ForwardingRefused.
//  - require_tls = false only: a plaintext client line the machine cannot answer itself is
//    left unconsumed (0 may be returned) together with a ConnectBackend action; the line is
//    read again as the first relayed command once the backend has greeted (SMTP replays the
//    client's EHLO/HELO first). With require_tls, no ConnectBackend and no SendToBackend
//    happen before TlsReady.
//  - between_commands() says whether the dialogue is between commands now (no reply owed, no
//    SASL exchange or message content under way): a stopping postern (proxy/drain.hpp) ends a
//    session that is quiet at such a point with the protocol's goodbye; the machine itself
//    relays every command as usual while postern drains.

#include "protocols/action.hpp"
#include "protocols/forwarding.hpp"
#include "protocols/protocol.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postern::protocols {

struct MachineSettings {
    Protocol protocol = Protocol::Imap;
    bool implicit_tls = true;              // false: STARTTLS listener, the machine speaks first
    bool require_tls = true;               // STARTTLS listeners: no backend before TLS
    std::string hostname;                  // for greetings postern writes itself
    std::size_t max_line = 4096;           // a client command line, CRLF included
    std::size_t max_backend_line = 65536;  // a backend response line before passthrough
    std::size_t max_errors = 10;           // bad commands in a row before closing
    // SMTP STARTTLS listeners: the extension lines (without "250-") the backend answered EHLO
    // with, learned by the proxy ahead of time; may be empty, never null.
    std::shared_ptr<const std::vector<std::string>> smtp_extensions =
        std::make_shared<const std::vector<std::string>>();
};

class Machine {
public:
    Machine() = default;
    Machine(const Machine&) = delete;
    Machine& operator=(const Machine&) = delete;
    Machine(Machine&&) = delete;
    Machine& operator=(Machine&&) = delete;
    virtual ~Machine() = default;

    [[nodiscard]] virtual std::size_t on_bytes(Peer from, std::string_view data, Actions& out) = 0;
    virtual void on_event(Event event, Actions& out) = 0;
    // The backend trusts postern with the client's identity (backend option `xclient`): send it
    // before the first client byte. Call before BackendReady; ignored afterwards, and by a
    // machine that has nothing to forward.
    virtual void forward_identity(ClientIdentity /*identity*/) {}

    // In the relayed dialogue with nothing under way: no reply owed, no SASL exchange, no
    // message content, no command half read. The host adds what the machine cannot see: no
    // unconsumed bytes either way, and nothing still to be written.
    [[nodiscard]] virtual bool between_commands() const noexcept { return false; }

    // For the end-of-session log and for tests; never for control flow in the session.
    [[nodiscard]] virtual std::string_view state_name() const noexcept = 0;
};

[[nodiscard]] std::unique_ptr<Machine> make_machine(const MachineSettings& settings);

}  // namespace postern::protocols
