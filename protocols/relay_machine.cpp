#include "protocols/relay_machine.hpp"

#include <variant>

namespace postern::protocols {

namespace {

// Appends to the previous action when it is of the same kind: the session writes fewer,
// larger chunks, and order is kept because only the last action is ever extended.
template <class Send>
void append_send(Actions& out, std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    if (!out.empty()) {
        if (auto* last = std::get_if<Send>(&out.back())) {
            last->bytes.append(bytes);
            return;
        }
    }
    out.emplace_back(Send{std::string(bytes)});
}

}  // namespace

std::size_t RelayMachine::on_bytes(Peer from, std::string_view data, Actions& out) {
    switch (from) {
        case Peer::Client:
            if (phase_ == Phase::Dialogue) {
                return on_client(data, out);
            }
            client_stalled_ = client_stalled_ || (relaying() && !data.empty());
            return 0;
        case Peer::Backend:
            return relaying() ? on_backend(data, out) : 0;
    }
    return 0;
}

void RelayMachine::on_event(Event event, Actions& out) {
    switch (event) {
        case Event::TlsReady:
            if (phase_ == Phase::AwaitTls) {
                phase_ = Phase::Connecting;
                out.emplace_back(ConnectBackend{});
            }
            return;
        case Event::BackendReady:
            if (phase_ == Phase::Connecting) {
                phase_ = Phase::Greeting;
            }
            return;
        case Event::ClientConnected:  // TODO(#3): pre-TLS dialogue on STARTTLS listeners
            return;
        case Event::BackendFailed:
            // Also after the greeting: the client still deserves the protocol's goodbye.
            if (phase_ == Phase::Connecting || relaying()) {
                close_with(out, backend_unavailable_reply(), CloseReason::BackendUnreachable);
            }
            return;
    }
}

std::string_view RelayMachine::state_name() const noexcept {
    switch (phase_) {
        case Phase::AwaitTls:
            return "await_tls";
        case Phase::Connecting:
            return "connecting";
        case Phase::Greeting:
            return "greeting";
        case Phase::Dialogue:
            return dialogue_state_name();
        case Phase::Passthrough:
            return "passthrough";
        case Phase::Closed:
            return "closed";
    }
    return "unknown";
}

void RelayMachine::close(Actions& out, CloseReason reason) {
    phase_ = Phase::Closed;
    out.emplace_back(Close{reason});
}

void RelayMachine::close_with(Actions& out, std::string_view reply, CloseReason reason) {
    send_to_client(out, reply);
    close(out, reason);
}

void RelayMachine::passthrough(Actions& out) {
    phase_ = Phase::Passthrough;
    out.emplace_back(Passthrough{});
}

void RelayMachine::send_to_client(Actions& out, std::string_view bytes) {
    append_send<SendToClient>(out, bytes);
}

void RelayMachine::send_to_backend(Actions& out, std::string_view bytes) {
    append_send<SendToBackend>(out, bytes);
}

}  // namespace postern::protocols
