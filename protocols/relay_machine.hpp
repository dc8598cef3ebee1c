#pragma once
// RelayMachine is the skeleton the IMAP, POP3 and SMTP machines share: the phases of a
// session (client TLS, backend connect, backend greeting, the dialogue up to authentication,
// then Passthrough or Close), the backend-failure reply, and the rule that a machine in a
// terminal phase consumes nothing and emits nothing (machine.hpp's driving contract).
// Subclasses own the protocol: on_client()/on_backend() run only while the phase allows it.
// Invariants: client bytes are never consumed before the backend greeting has been relayed;
// SendToClient/SendToBackend bytes from one call are merged in order into as few actions as
// possible; after Close nothing more is appended.

#include "protocols/machine.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace postern::protocols {

class RelayMachine : public Machine {
public:
    explicit RelayMachine(const MachineSettings& settings) : settings_(settings) {}

    [[nodiscard]] std::size_t on_bytes(Peer from, std::string_view data, Actions& out) final;
    void on_event(Event event, Actions& out) final;
    [[nodiscard]] std::string_view state_name() const noexcept final;

protected:
    // STARTTLS listeners (next round) add their pre-TLS phases before AwaitTls.
    enum class Phase : std::uint8_t {
        AwaitTls,     // implicit TLS: the client's handshake has not finished
        Connecting,   // ConnectBackend emitted; waiting for BackendReady/BackendFailed
        Greeting,     // backend connected; its greeting not relayed yet
        Dialogue,     // relaying and filtering until authentication succeeds
        Passthrough,  // terminal: the session relays as-is
        Closed,       // terminal
    };

    // Called only in Phase::Dialogue. Same contract as on_bytes().
    [[nodiscard]] virtual std::size_t on_client(std::string_view data, Actions& out) = 0;
    // Called in Phase::Greeting and Phase::Dialogue. Same contract as on_bytes().
    [[nodiscard]] virtual std::size_t on_backend(std::string_view data, Actions& out) = 0;
    // The protocol's "backend unavailable" reply (replies.hpp).
    [[nodiscard]] virtual std::string backend_unavailable_reply() const = 0;
    // state_name() while in Phase::Dialogue: "auth", "command", "data", ...
    [[nodiscard]] virtual std::string_view dialogue_state_name() const noexcept = 0;

    [[nodiscard]] Phase phase() const noexcept { return phase_; }
    [[nodiscard]] bool relaying() const noexcept {
        return phase_ == Phase::Greeting || phase_ == Phase::Dialogue;
    }
    void greeting_relayed() noexcept { phase_ = Phase::Dialogue; }

    // Client bytes are held back until the backend answers (see machine.hpp). A subclass
    // calls client_stalled() where it stops for that reason, and asks yield_to_client() after
    // every backend line: when it says so, on_backend() returns at once, so the held bytes are
    // looked at before the next line, however the backend's bytes were cut.
    void client_stalled() noexcept { client_stalled_ = true; }
    [[nodiscard]] bool yield_to_client() noexcept {
        const bool yield = client_stalled_;
        client_stalled_ = false;
        return yield;
    }

    // The backend said no in its greeting; it is relayed already.
    void backend_refused(Actions& out) { close(out, CloseReason::BackendUnreachable); }
    void close(Actions& out, CloseReason reason);
    void close_with(Actions& out, std::string_view reply, CloseReason reason);
    void passthrough(Actions& out);

    static void send_to_client(Actions& out, std::string_view bytes);
    static void send_to_backend(Actions& out, std::string_view bytes);

    const MachineSettings settings_;

private:
    Phase phase_ = Phase::AwaitTls;
    bool client_stalled_ = false;
};

}  // namespace postern::protocols
