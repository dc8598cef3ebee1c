#pragma once
// RelayMachine is the skeleton the IMAP, POP3 and SMTP machines share, so each rule here is
// written once: the phases of a session (the plaintext dialogue of a STARTTLS listener, client
// TLS, backend connect, backend greeting, forwarding the client's identity, the dialogue up to
// authentication, then Passthrough or Close); the framing of lines on both sides (the line limits;
// before TLS also NUL and junk bytes and counted errors; after the greeting NUL bytes, the
// responses of a SASL exchange and client bytes held back while the backend owes a reply); the
// protocol's canned replies (one table per protocol, replies.hpp); and the rule that a machine in a
// terminal phase consumes nothing and emits nothing (machine.hpp's driving contract). Subclasses
// own the protocol: pre_tls_line() answers one plaintext line, client_line() reads one command,
// backend_line() one backend line, and client_content()/backend_content() pass on what is not lines
// (IMAP literals, SMTP message content).
//
// Invariants:
//  - client bytes are never consumed for the relay before the backend greeting was read, nor
//    before the forwarding exchange that follows it is over;
//  - the call that emits StartTls consumes exactly through the STARTTLS line; from then until
//    TlsReady client bytes are consumed and ignored, and nothing learned before TLS (the pre-TLS
//    line reader, the error count, SMTP's EHLO line) survives it (RFC 3207 §4.2, CVE-2011-0411);
//  - with require_tls, neither ConnectBackend nor SendToBackend happens before TlsReady;
//  - SendToClient/SendToBackend bytes from one call are merged in order into as few actions as
//    possible; after Close nothing more is appended.

#include "protocols/line_reader.hpp"
#include "protocols/machine.hpp"
#include "protocols/replies.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::protocols {

class RelayMachine : public Machine {
public:
    explicit RelayMachine(const MachineSettings& settings)
        : settings_(settings),
          replies_(replies::of(settings.protocol)),
          phase_(settings.implicit_tls ? Phase::AwaitTls : Phase::Accepted) {}

    [[nodiscard]] std::size_t on_bytes(Peer from, std::string_view data, Actions& out) final;
    void on_event(Event event, Actions& out) final;
    void forward_identity(ClientIdentity identity) final;
    [[nodiscard]] bool between_commands() const noexcept final {
        // PreTls: postern answers each line at once, so nothing is ever owed there.
        return phase_ == Phase::PreTls ||
               (phase_ == Phase::Dialogue && !sasl_active_ && !command_under_way());
    }
    [[nodiscard]] std::string_view state_name() const noexcept final;

protected:
    enum class Phase : std::uint8_t {
        Accepted,     // STARTTLS listener: ClientConnected not seen yet
        PreTls,       // STARTTLS listener: postern answers the plaintext client itself
        TlsPending,   // StartTls emitted: client bytes are dropped until TlsReady
        AwaitTls,     // implicit TLS: the client's handshake has not finished
        Connecting,   // ConnectBackend emitted; waiting for BackendReady/BackendFailed
        Greeting,     // backend connected; its greeting not read yet
        Forwarding,   // the client's identity sent after the greeting; its reply not read yet
        Dialogue,     // relaying and filtering until authentication succeeds
        Passthrough,  // terminal: the session relays as-is
        Closed,       // terminal
    };

    // What pre_tls_line() did with one plaintext client line.
    enum class PreTlsStep : std::uint8_t {
        Answered,     // a success reply was sent: the count of errors in a row restarts
        Refused,      // an error reply was sent: counts toward max_errors
        StartTls,     // the "go ahead" reply was sent: the handshake follows
        NeedBackend,  // require_tls is off and the line is for the backend: left unconsumed
        Closed,       // the machine closed (QUIT/LOGOUT, or bad input)
    };

    // What client_line() did with one command line.
    enum class LineStep : std::uint8_t {
        Consumed,  // handled (forwarded, answered, or the machine closed)
        Stall,     // not now: left unconsumed until the backend has answered
    };

    // Phase::Dialogue, client side. Bytes at the front that are not a command line (an IMAP
    // literal, SMTP message content): forwards them and returns how many; 0 when the next
    // bytes are a line. Never 0 for a non-empty `data` while such bytes are due.
    [[nodiscard]] virtual std::size_t client_content(std::string_view /*data*/, Actions& /*out*/) {
        return 0;
    }
    // Phase::Dialogue: true while the next client line must wait for the backend (a reply it
    // must see first, a full queue of pipelined commands).
    [[nodiscard]] virtual bool client_waits() const noexcept { return false; }
    // Phase::Dialogue: a command is under way (sent and not answered, or partly sent, or
    // message content due): not between commands, so a drain leaves the session alone.
    [[nodiscard]] virtual bool command_under_way() const noexcept = 0;
    // Phase::Dialogue: one complete client line (terminator included, at most max_line bytes,
    // no NUL byte) that is a command, not a SASL response.
    [[nodiscard]] virtual LineStep client_line(std::string_view line, Actions& out) = 0;
    // Phase::Greeting to Phase::Dialogue, backend side, as client_content(): bytes at the
    // front that are not a line (an IMAP literal), relayed; 0 when the next bytes are a line.
    [[nodiscard]] virtual std::size_t backend_content(std::string_view /*data*/, Actions& /*out*/) {
        return 0;
    }
    // Phase::Greeting, Phase::Forwarding (the reply to the forwarding command) and
    // Phase::Dialogue: one complete backend line (terminator included, at most
    // max_backend_line bytes), consumed whatever the machine does with it.
    virtual void backend_line(std::string_view line, Actions& out) = 0;
    // A backend line over max_backend_line, or one the protocol cannot read: we can no longer
    // follow the dialogue. Closes; first tells the client while it waits for its greeting or
    // during the forwarding exchange, which the client cannot know of.
    virtual void backend_unreadable(Actions& out) {
        if (phase_ == Phase::Forwarding || phase_ == Phase::Greeting) {
            close_with(out, backend_unavailable_reply(), CloseReason::ProtocolError);
        } else {
            close(out, CloseReason::ProtocolError);
        }
    }
    // STARTTLS listeners: postern's own greeting, sent on ClientConnected.
    [[nodiscard]] virtual std::string pre_tls_greeting() const = 0;
    // STARTTLS listeners, Phase::PreTls: one complete line (terminator included) that has
    // passed the NUL/junk checks. Sends the reply; never sends anything to the backend.
    [[nodiscard]] virtual PreTlsStep pre_tls_line(std::string_view line, Actions& out) = 0;
    // state_name() while in Phase::Dialogue: "auth", "command", "data", ...
    [[nodiscard]] virtual std::string_view dialogue_state_name() const noexcept = 0;

    [[nodiscard]] Phase phase() const noexcept { return phase_; }
    [[nodiscard]] bool relaying() const noexcept {
        return phase_ == Phase::Greeting || phase_ == Phase::Forwarding ||
               phase_ == Phase::Dialogue;
    }
    // Implicit TLS relays the backend's greeting; a STARTTLS listener has greeted the client
    // itself, so the backend's is read and dropped (unless it is a refusal).
    [[nodiscard]] bool relay_greeting() const noexcept { return settings_.implicit_tls; }
    // False on a STARTTLS listener whose client never upgraded (require_tls = false): the
    // backend leg carries its plaintext dialogue, so a later STARTTLS is refused as "not
    // available" rather than "already active".
    [[nodiscard]] bool client_on_tls() const noexcept { return client_tls_; }
    void greeting_relayed() noexcept { phase_ = Phase::Dialogue; }

    // Forwarding the client's identity (machine.hpp, forwarding.hpp). The subclass reads the
    // greeting as always, but gives the client its bytes through greet_client(), which holds
    // them while the exchange is due (false: more than max_backend_line held, the caller treats
    // the greeting as unreadable). Where a greeting that lets the session go on is complete,
    // start_forwarding() sends the command and enters Phase::Forwarding (false: nothing to
    // forward, go on at once); the subclass reads the reply in backend_line() and calls
    // forwarding_accepted(), which sends the held greeting and returns to Phase::Greeting, and
    // then goes on as after the greeting; or forwarding_refused().
    [[nodiscard]] bool forwarding_due() const noexcept {
        return identity_.has_value() || phase_ == Phase::Forwarding;
    }
    [[nodiscard]] bool greet_client(Actions& out, std::string_view bytes);
    [[nodiscard]] bool start_forwarding(Actions& out);
    void forwarding_accepted(Actions& out);
    void forwarding_refused(Actions& out) {
        close_with(out, backend_unavailable_reply(), CloseReason::ForwardingRefused);
    }

    // A SASL exchange (IMAP AUTHENTICATE, POP3 AUTH, SMTP AUTH: RFC 9051 §6.2.2, RFC 5034 §4,
    // RFC 4954 §4): until its final reply the client sends one response line per challenge of
    // the backend's, never a command; those lines are forwarded as they are, and the client is
    // held back while it owes no answer.
    void sasl_start() noexcept {
        sasl_active_ = true;
        sasl_credits_ = 0;
    }
    void sasl_challenge() noexcept {  // the backend asked: the client may answer one line
        if (sasl_credits_ < kMaxSaslCredits) {
            ++sasl_credits_;
        }
    }
    void sasl_end() noexcept {
        sasl_active_ = false;
        sasl_credits_ = 0;
    }
    [[nodiscard]] bool sasl_active() const noexcept { return sasl_active_; }

    // The protocol's "backend unavailable" reply (replies.hpp).
    [[nodiscard]] std::string backend_unavailable_reply() const {
        return replies_.backend_unavailable.text(settings_.hostname);
    }

    // Bad commands the machine answers itself, in a row (settings_.max_errors): count_error()
    // after the error reply was sent closes the session once there are too many; no_error()
    // after a command that went well.
    void count_error(Actions& out);
    void no_error() noexcept { errors_ = 0; }

    // The backend said no in its greeting; it is relayed already.
    void backend_refused(Actions& out) { close(out, CloseReason::BackendUnreachable); }
    void close(Actions& out, CloseReason reason);
    void close_with(Actions& out, std::string_view reply, CloseReason reason);
    void passthrough(Actions& out);

    static void send_to_client(Actions& out, std::string_view bytes);
    static void send_to_backend(Actions& out, std::string_view bytes);

    const MachineSettings settings_;

private:
    static constexpr std::uint32_t kMaxSaslCredits = 64;

    std::size_t pre_tls_client(std::string_view data, Actions& out);
    std::size_t dialogue_client(std::string_view data, Actions& out);
    std::size_t relay_backend(std::string_view data, Actions& out);
    void close_with(Actions& out, const replies::Canned& reply, CloseReason reason);

    const replies::ProtocolReplies& replies_;
    Phase phase_;
    std::optional<ClientIdentity> identity_;  // to forward after the greeting; cleared once sent
    std::string held_greeting_;               // greet_client() bytes while forwarding_due()
    LineReader pre_tls_reader_;  // the plaintext dialogue's lines; forgotten at StartTls
    LineReader client_reader_;   // the dialogue's command lines
    LineReader backend_reader_;  // the backend's lines, greeting included
    std::size_t errors_ = 0;
    std::uint32_t sasl_credits_ = 0;  // challenges not yet answered by the client
    bool sasl_active_ = false;
    // Client bytes are held back until the backend answers (see machine.hpp): set where the
    // client side stops for that reason; after every backend line, when it is set, on_bytes()
    // returns at once, so the held bytes are looked at before the next line, however the
    // backend's bytes were cut.
    bool client_stalled_ = false;
    bool client_tls_ = false;
};

}  // namespace postern::protocols
