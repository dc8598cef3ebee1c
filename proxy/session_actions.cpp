// The Session's side of the dialogue: what protocols/driver.hpp offers the machine, and what
// the session does with the machine's actions (replies, STARTTLS, the backend connection
// through the listener's BackendConnector, passthrough, close). The phases themselves, the
// bytes and the end are in proxy/session.cpp.

#include "protocols/driver.hpp"
#include "proxy/log.hpp"
#include "proxy/proxy_protocol.hpp"
#include "proxy/session.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

namespace postern::proxy {

using protocols::CloseReason;
using protocols::Peer;

// What protocols/driver.hpp drives the machine through. Bytes reach it only in the Dialogue
// phase (nothing the client sent after STARTTLS may be acted on); events also while Upgrading
// (the machine waits for TlsReady in its own TLS-pending state).
struct Session::MachineHost {
    Session& s;
    bool events = false;
    [[nodiscard]] protocols::Machine* machine() const noexcept {
        const bool open = s.phase_ == Phase::Dialogue || (events && s.phase_ == Phase::Upgrading);
        return open ? s.machine_.get() : nullptr;
    }
    // Nothing while a peer is owed kHighWater bytes: the machine's output waits for it.
    [[nodiscard]] std::string_view unread(Peer from) const noexcept {
        return s.relay_.dialogue_has_room() ? s.relay_.stream(from).in.view() : std::string_view{};
    }
    void consumed(Peer from, std::size_t n, protocols::Actions& /*s.actions_*/) {
        s.consumed(from, n);
    }
    void act(protocols::Actions& /*s.actions_*/) { s.apply_actions(); }
};

bool Session::pump_machine() {
    MachineHost host{*this};
    return protocols::pump(host, actions_);
}

// RFC 3207 §4.2 and the 2011 Postfix/2021 "NO STARTTLS" findings: nothing the client sent after
// its STARTTLS line may be acted on. Reading stops now; what was already read is dropped; the
// reply is flushed; only then does OpenSSL get the socket, so bytes still in the kernel reach
// the handshake and fail it (fail closed).
void Session::begin_upgrade() {
    const std::size_t pipelined = client_.in.size();
    listener_.counters.starttls.add();
    listener_.counters.starttls_discarded_bytes.add(pipelined);
    if (pipelined > 0) {
        client_.in.clear();
        spdlog::warn(
            "client {} on {} sent {} byte(s) after STARTTLS before the handshake; "
            "discarded (command injection attempt?)",
            client_address_, listener_.name, pipelined);
    }
    phase_ = Phase::Upgrading;
}

// --- the backend ----------------------------------------------------------------------------

void Session::connect_backend() {
    if (link_ != Link::None || !in_dialogue()) {
        return;
    }
    BackendRequest request{.base = listener_.worker->base(),
                           .callback = &event_cb<Session, &Session::on_backend_attempt>,
                           .arg = this,
                           .client = {.peer = {},
                                      .local = {},
                                      .address = client_address_,
                                      .sni = handshake_.server_name,
                                      .hostname = listener_.machine.hostname,
                                      .tls_version = tls_established() ? tls_version_ : "",
                                      .cipher = tls_established() ? cipher_ : ""},
                           .children = &listener_.worker->children()};
    if (!client_addresses(request.client)) {
        end_detail_ = "cannot read the client's address: " + errno_text(errno);
        client_broken_ = true;
        close(CloseReason::ClientClosed);
        return;
    }
    BackendOutcome failed;
    target_ = &listener_.backend_for(handshake_.server_name);
    if (target_->xclient && machine_) {
        forward_identity(request.client);
    }
    attempt_ = target_->connector->connect(request, failed);
    if (!attempt_) {
        end_detail_ = std::move(failed.failure);
        feed_event(protocols::Event::BackendFailed);
        return;
    }
    link_ = Link::Connecting;
    deadlines_.connecting(Clock::now() + target_->connector->timeout());
    arm_timer();
}

void Session::on_backend_attempt(short what) {
    if (link_ != Link::Connecting) {
        return;
    }
    BackendOutcome outcome;
    if (!attempt_->on_event(what, outcome)) {
        return;  // still trying
    }
    attempt_.reset();  // from its own event's callback: libevent 2.1 touches it no more
    if (outcome.fd.get() < 0) {
        backend_failed(std::move(outcome.failure));
    } else {
        on_backend_connected(std::move(outcome));
    }
    progress();
}

void Session::on_backend_connected(BackendOutcome outcome) {
    child_ = std::move(outcome.child);
    if (!backend_.open(listener_.worker->base(), std::move(outcome.fd),
                       &event_cb<Session, &Session::on_backend_io>, this)) {
        backend_failed(backend_.error());
        return;
    }
    link_ = Link::Open;
    backend_served_ = std::move(outcome.served);
    if (!outcome.preamble.empty()) {  // before what the machine queued while connecting
        ByteBuffer first{listener_.worker->buffers()};
        first.append(outcome.preamble);
        backend_.out.move_to(first);
        first.move_to(backend_.out);
    }
    deadlines_.backend_ready();
    arm_timer();  // a plaintext client past postern's own dialogue now idles like any other
    feed_event(protocols::Event::BackendReady);
}

void Session::backend_failed(std::string detail) {
    drop_backend();
    deadlines_.connect_failed();
    end_detail_ = std::move(detail);
    feed_event(protocols::Event::BackendFailed);
}

// --- the protocol machine -------------------------------------------------------------------

void Session::feed_event(protocols::Event event) {
    MachineHost host{*this, true};
    protocols::deliver(host, event, actions_);
}

void Session::consumed(Peer from, std::size_t n) {
    ByteBuffer& in = relay_.stream(from).in;
    const std::size_t used = std::min(in.size(), n);
    if (from == Peer::Client) {
        relay_.client_consumed(used);
    }
    in.consume(used);
    apply_actions();
}

void Session::apply_actions() {
    // Handling an action can feed the machine again (a backend failing at once), which reuses
    // actions_: walk a copy.
    protocols::Actions actions = std::move(actions_);
    actions_.clear();
    for (auto& action : actions) {
        if (phase_ == Phase::Closing || phase_ == Phase::Closed) {
            break;
        }
        apply(action);
    }
    if (actions_.empty()) {
        actions.clear();
        actions_ = std::move(actions);  // keep the capacity for the next call
    }
}

void Session::apply(protocols::Action& action) {
    std::visit(
        [this](auto& a) {
            using A = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<A, protocols::SendToClient>) {
                relay_.send(Peer::Client, a.bytes);
            } else if constexpr (std::is_same_v<A, protocols::SendToBackend>) {
                if (link_ != Link::None) {  // queued while connecting; no backend: dropped
                    relay_.send(Peer::Backend, a.bytes);
                }
            } else if constexpr (std::is_same_v<A, protocols::StartTls>) {
                if (tls_established() || listener_.spec.tls != conf::TlsMode::StartTls) {
                    end_detail_ = "StartTls asked for on a TLS session";
                    close(CloseReason::Internal);
                } else {
                    begin_upgrade();
                }
            } else if constexpr (std::is_same_v<A, protocols::ConnectBackend>) {
                connect_backend();
            } else if constexpr (std::is_same_v<A, protocols::Passthrough>) {
                start_relay();
            } else if constexpr (std::is_same_v<A, protocols::Close>) {
                close(a.reason);
            }
        },
        action);
}

void Session::start_relay() {
    if (phase_ != Phase::Dialogue) {  // never while Upgrading: TLS must come first
        return;
    }
    phase_ = Phase::Relaying;
    machine_.reset();
    actions_ = {};  // a relaying session keeps nothing of the dialogue
    relay_.start();
}

}  // namespace postern::proxy
