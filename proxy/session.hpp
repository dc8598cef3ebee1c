#pragma once
// One client connection from accept to close: the TLS handshake (certificate chosen by SNI in
// tls::FrontContext), the protocol machine that speaks the dialogue up to authentication, the
// backend connection, and then a plain relay of bytes both ways with back-pressure. It writes
// exactly one log line when it ends. The Worker owns it; it never deletes itself.
//
// Path of a session: Handshaking -> Dialogue (machine) -> Relaying (machine freed) -> Closing
// (flush what is owed to the client) -> Closed (retired to the worker's reaper).
//
// Every event (either socket, the timer) ends in progress(), the one place that moves bytes.
// Sockets are edge-triggered (proxy/stream.hpp); one timer per session checks timestamps, so
// traffic never re-arms anything.

#include "protocols/machine.hpp"
#include "proxy/event.hpp"
#include "proxy/stream.hpp"
#include "tls/front_context.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace postern::proxy {

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

    // Ends the session now (shutdown): flushes nothing more.
    void abort(protocols::CloseReason reason);

    // Callback entry points (through proxy/trampoline.hpp).
    void on_client_io(short what);
    void on_backend_io(short what);
    void on_timer(short what);
    void fail_internal(const char* what);

private:
    using Clock = std::chrono::steady_clock;
    enum class State : std::uint8_t { Handshaking, Dialogue, Relaying, Closing, Closed };

    void progress();
    bool step_handshake();
    bool flush(protocols::Peer to);
    bool read(protocols::Peer from);
    bool pump_machine();
    bool after_io();
    void begin_upgrade();
    void complete_upgrade();
    void on_tls_ready();
    void connect_backend();
    void on_backend_connected();
    void backend_failed(std::string detail);
    std::size_t feed_once(protocols::Peer from);
    void feed_event(protocols::Event event);
    void apply_actions();
    void start_relay();
    void write_to(protocols::Peer to, std::string_view bytes);
    void remember_tail(const ByteBuffer& sent, std::size_t length);
    void arm_timer();
    void close(protocols::CloseReason reason);
    void close_with(protocols::CloseReason reason, std::string_view reply);
    void finish();
    void log_end() const;
    [[nodiscard]] Stream& stream(protocols::Peer peer) noexcept {
        return peer == protocols::Peer::Client ? client_ : backend_;
    }
    [[nodiscard]] std::chrono::milliseconds quiet_limit() const;

    ListenerContext& listener_;
    std::string client_address_;
    tls::Handshake handshake_;
    Stream client_;
    Stream backend_;
    EventPtr timer_;
    std::unique_ptr<protocols::Machine> machine_;
    protocols::Actions actions_;
    State state_ = State::Handshaking;
    protocols::CloseReason end_ = protocols::CloseReason::ClientClosed;
    std::string end_detail_;
    bool backend_connecting_ = false;
    bool backend_connected_ = false;
    bool upgrading_ = false;  // StartTls: waiting for the reply to leave
    bool tls_established_ = false;
    bool client_broken_ = false;  // a read or write on the client failed: nothing can be sent
    bool backend_write_shut_ = false;
    std::uint64_t discarded_ = 0;  // plaintext bytes pipelined after STARTTLS, dropped
    std::uint64_t bytes_in_ = 0;   // client -> backend, plaintext
    std::uint64_t bytes_out_ = 0;  // backend -> client, plaintext
    std::string tail_;             // the client's last bytes while relaying (protocols/goodbye.hpp)
    const char* tls_version_ = "-";
    const char* cipher_ = "-";
    Clock::time_point started_ = Clock::now();
    Clock::time_point handshake_started_ = started_;
    Clock::time_point connect_started_{};
    Clock::time_point client_seen_ = started_;  // last bytes from the client
    Clock::time_point backend_seen_{};          // last bytes from the backend
    Clock::time_point client_flushed_{};        // last write progress to the client
    Clock::time_point close_deadline_{};
};

}  // namespace postern::proxy
