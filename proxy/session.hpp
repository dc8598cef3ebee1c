#pragma once
// One client connection from accept to close: the TLS handshake (certificate chosen by SNI in
// tls::FrontContext), the protocol machine's dialogue and the actions it asks for (replies,
// STARTTLS, a backend, passthrough, close; session_actions.cpp), then the relay, then the end
// (session.cpp; its log line in session_log.cpp). Only this class changes its phase. It writes
// exactly one log line when it ends. The Worker owns it; it never deletes itself.
//
// Phases: [ProxyHeader ->] [Dialogue -> Upgrading ->] Handshake -> Dialogue -> Relaying ->
// Closing -> Closed. ProxyHeader (accept_proxy) reads a trusted balancer's PROXY header and
// nothing after it (the TLS or plaintext dialogue that follows is the client's own).
// A STARTTLS listener starts in a plaintext Dialogue; Upgrading waits for the go-ahead reply to
// leave before the handshake. Closing flushes what is owed to the client; Closed is retired to
// the worker's reaper. Beside the phase, the backend link: none, connecting (a BackendAttempt
// from the listener's BackendConnector), open, or half-closed after the client's EOF.
//
// Helpers, each in its own file: proxy/relay.hpp moves the bytes (back-pressure, counts, the
// goodbye tail), proxy/deadlines.hpp says which timeout is due, proxy/backend_connector.hpp
// makes the backend connection, protocols/driver.hpp offers bytes to the machine.
//
// While postern drains (drain()), the one timer also looks for a quiet moment between commands.
//
// Every event (either socket, the timer) ends in progress(), the one place that moves bytes.
// Sockets are edge-triggered (proxy/stream.hpp); one timer per session checks timestamps, so
// traffic never re-arms anything.

#include "protocols/machine.hpp"
#include "proxy/backend_connector.hpp"
#include "proxy/client_limits.hpp"
#include "proxy/deadlines.hpp"
#include "proxy/event.hpp"
#include "proxy/relay.hpp"
#include "proxy/stream.hpp"
#include "tls/front_context.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace postern::proxy {

struct BackendTarget;
struct ListenerContext;

class Session {
public:
    Session(ListenerContext& listener, UniqueFd fd, std::string client_address);
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    Session(Session&&) = delete;
    Session& operator=(Session&&) = delete;
    ~Session();

    // Starts the TLS handshake (implicit TLS) or the plaintext dialogue (STARTTLS listeners).
    // On failure the session is already closed and retired.
    void start();

    // postern drains (proxy/drain.hpp): the session goes on as usual (handshake, backend,
    // commands), and once it is quiet both ways for Deadlines::kDrainQuiet between commands
    // (relaying: quiet is enough) it ends with replies::drain_goodbye(). Called before start(),
    // start() applies it.
    void drain();
    // Ends the session now (shutdown_timeout passed, a second signal): the protocol's goodbye
    // with one non-blocking write where the client can take one, then closed.
    void stop();

    // The connection limits this session counts in (proxy/client_limits.hpp), from accept;
    // with accept_proxy the client's own are taken once the header names it. Released when
    // the session ends.
    void hold(Admission admission) noexcept { admission_ = std::move(admission); }

    // Callback entry points (through proxy/trampoline.hpp).
    void on_client_io(short what);
    void on_backend_io(short what);
    void on_backend_attempt(short what);
    void on_timer(short what);
    void fail_internal(const char* what);

private:
    using Clock = Deadlines::Clock;
    enum class Phase : std::uint8_t {
        ProxyHeader,  // accept_proxy: the balancer's PROXY header comes first
        Handshake,
        Dialogue,
        Upgrading,
        Relaying,
        Closing,
        Closed
    };
    enum class Link : std::uint8_t { None, Connecting, Open, HalfClosed };
    struct MachineHost;  // the session as protocols/driver.hpp's host

    void begin();
    void begin_drain();
    [[nodiscard]] bool between_commands() const noexcept;
    // Quiet for Deadlines::kDrainQuiet while draining: true when that ended the session.
    bool drain_quiet();
    void progress();
    bool step_proxy_header();
    bool step_handshake();
    bool flush(protocols::Peer to);
    bool read(protocols::Peer from);
    bool pump_machine();
    bool after_io();
    void begin_upgrade();
    void complete_upgrade();
    void on_tls_ready();
    void connect_backend();
    [[nodiscard]] bool client_addresses(ClientInfo& client) const;
    void forward_identity(const ClientInfo& client);
    void on_backend_connected(BackendOutcome outcome);
    void backend_failed(std::string detail);
    void drop_backend();
    void consumed(protocols::Peer from, std::size_t n);
    void feed_event(protocols::Event event);
    void apply_actions();
    void apply(protocols::Action& action);
    void start_relay();
    void arm_timer();
    void close(protocols::CloseReason reason);
    void close_with(protocols::CloseReason reason, std::string_view reply);
    void finish();
    void log_end() const;
    [[nodiscard]] bool in_dialogue() const noexcept {
        return phase_ == Phase::Dialogue || phase_ == Phase::Upgrading;
    }
    [[nodiscard]] bool tls_established() const noexcept { return tls_version_ != nullptr; }

    ListenerContext& listener_;
    Admission admission_;
    std::string client_address_;
    // accept_proxy: the balancer's own address (client_address_ is then the header's source),
    // and the two addresses the header named; empty/AF_UNSPEC otherwise (and for a LOCAL one).
    std::string via_;
    SocketAddress proxied_peer_;
    SocketAddress proxied_local_;
    tls::Handshake handshake_;
    Stream client_;
    // An exec backend's program while the link is up (declared before backend_: on
    // destruction the socket closes first, so the program sees EOF before its SIGTERM).
    std::unique_ptr<ChildProcess> child_;
    Stream backend_;
    Clock::time_point started_ = Clock::now();
    Deadlines deadlines_;
    Relay relay_;
    EventPtr timer_;
    // The dialogue's machine: from the first Dialogue (a STARTTLS session keeps it through
    // Upgrading and Handshake) until Relaying or Closing.
    std::unique_ptr<protocols::Machine> machine_;
    protocols::Actions actions_;
    std::unique_ptr<BackendAttempt> attempt_;  // while Link::Connecting
    const BackendTarget* target_ = nullptr;    // the backend chosen (by SNI, from the routes)
    std::string backend_served_;               // which of its addresses answered
    Phase phase_ = Phase::Handshake;
    Link link_ = Link::None;
    bool client_broken_ = false;  // a read or write on the client failed: nothing can be sent
    bool backend_heard_ = false;  // a byte came from the backend (its greeting began)
    bool draining_ = false;       // drain() was called
    protocols::CloseReason end_ = protocols::CloseReason::ClientClosed;
    std::string end_detail_;
    // Learned when the handshake completes; null while plaintext.
    const char* tls_version_ = nullptr;
    const char* cipher_ = nullptr;
};

}  // namespace postern::proxy
