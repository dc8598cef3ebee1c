#pragma once
// One client connection from accept to close: the TLS handshake (certificate chosen by SNI in
// tls::FrontContext), the protocol machine that speaks the dialogue up to authentication, the
// backend connection, and then a plain relay of bytes both ways with back-pressure. It writes
// exactly one log line when it ends. The Worker owns it; it never deletes itself.
//
// Path of a session: Handshaking -> Dialogue (machine) -> Relaying (machine freed) -> Closing
// (flush what is owed to the client) -> Closed (retired to the worker's reaper).

#include "protocols/machine.hpp"
#include "proxy/event.hpp"
#include "tls/front_context.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace postern::proxy {

struct ListenerContext;

class Session {
public:
    Session(ListenerContext& listener, int fd, std::string client_address);
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
    void on_client_read();
    void on_client_write();
    void on_client_event(short what);
    void on_backend_read();
    void on_backend_write();
    void on_backend_event(short what);
    void fail_internal(const char* what);

private:
    enum class State : std::uint8_t { Handshaking, Dialogue, Relaying, Closing, Closed };

    void start_tls();
    void start_plaintext();
    void begin_upgrade();
    void complete_upgrade();
    void on_tls_ready();
    void connect_backend();
    void pump();
    std::size_t feed_once(protocols::Peer from);
    void feed_event(protocols::Event event);
    void apply_actions();
    void start_relay();
    void relay(protocols::Peer from);
    void write_to(protocols::Peer to, std::string_view bytes);
    void throttle(protocols::Peer from);
    void remember_tail(evbuffer* in, std::size_t length);
    void close(protocols::CloseReason reason);
    void close_with(protocols::CloseReason reason, std::string_view reply);
    void finish();
    void log_end() const;
    [[nodiscard]] bufferevent* bev(protocols::Peer peer) const noexcept;

    ListenerContext& listener_;
    std::string client_address_;
    // Ours while the client is plaintext (a STARTTLS listener's bufferevent does not own it);
    // released to the TLS bufferevent, which closes it (BEV_OPT_CLOSE_ON_FREE).
    UniqueFd fd_;
    tls::Handshake handshake_;
    BevPtr client_;
    BevPtr backend_;
    std::unique_ptr<protocols::Machine> machine_;
    protocols::Actions actions_;
    State state_ = State::Handshaking;
    protocols::CloseReason end_ = protocols::CloseReason::ClientClosed;
    std::string end_detail_;
    bool backend_connecting_ = false;
    bool upgrading_ = false;  // StartTls: waiting for the reply to leave
    bool tls_established_ = false;
    std::uint64_t discarded_ = 0;  // plaintext bytes pipelined after STARTTLS, dropped
    bool client_eof_ = false;
    bool backend_eof_ = false;
    bool backend_write_shut_ = false;
    bool paused_[2] = {false, false};  // reading from that peer stopped for back-pressure
    std::uint64_t bytes_in_ = 0;       // client -> backend, plaintext
    std::uint64_t bytes_out_ = 0;      // backend -> client, plaintext
    std::string tail_;  // the client's last bytes while relaying (protocols/goodbye.hpp)
    std::string tls_version_ = "-";
    std::string cipher_ = "-";
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point backend_active_{};  // last bytes from the backend
};

}  // namespace postern::proxy
