#pragma once
// One load-generator connection: a non-blocking TCP socket driven by libevent, in plaintext or
// TLS (from the first byte, or after the protocol's STARTTLS exchange), running a Script and
// then Requests. Owned by a scenario, which hears of it through ConnOwner. A connection never
// destroys itself: after close() or a failure it is inert, and the owner frees it later, never
// inside one of its callbacks.

#include "tests/bench/dialogue.hpp"
#include "tests/bench/handles.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace postern::bench {

using Clock = std::chrono::steady_clock;

class Conn;

// Told what happens to a connection. Callbacks may start, request on or close connections, but
// must not free the one they are called for.
class ConnOwner {
public:
    virtual void on_ready(Conn& conn) = 0;                         // its script finished
    virtual void on_reply(Conn& conn, std::uint64_t payload) = 0;  // a request was answered
    virtual void on_failed(Conn& conn, std::string_view why) = 0;  // error or peer closed

protected:
    ConnOwner() = default;
    ConnOwner(const ConnOwner&) = default;
    ConnOwner& operator=(const ConnOwner&) = default;
    ~ConnOwner() = default;
};

// Where and how to connect; shared by every connection of a run.
struct Target {
    sockaddr_storage address{};
    socklen_t address_length = 0;
    Protocol protocol = Protocol::Imap;
    TlsMode tls = TlsMode::Implicit;
    SSL_CTX* tls_context = nullptr;  // client context (tls_client.hpp); unused for TlsMode::None
    std::string sni;                 // empty: no server_name extension
    bool login = false;              // run append_login() after connecting
    std::string name;                // as given on the command line, for reports
};

class Conn {
public:
    // `resume`: a session to offer for resumption, or nullptr for a full handshake.
    Conn(event_base* base, const Target& target, ConnOwner& owner, SSL_SESSION* resume);
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    Conn(Conn&&) = delete;
    Conn& operator=(Conn&&) = delete;
    ~Conn();

    // Opens the socket and starts connecting. False (and error() says why) when that fails at
    // once; no callback follows then.
    [[nodiscard]] bool start();

    // Sends a command now (pipelining is fine) and waits for its reply. Only after on_ready.
    void request(const Request& request);

    // Closes at once, without a protocol goodbye. No callback follows.
    void close() noexcept;

    // Fails the connection as overdue (owner's on_failed follows).
    void time_out() { fail("timed out"); }

    [[nodiscard]] bool open() const noexcept { return state_ != State::Closed; }
    [[nodiscard]] bool resumed() const noexcept { return resumed_; }
    [[nodiscard]] std::size_t pending() const noexcept { return expects_.size(); }
    [[nodiscard]] Clock::time_point started() const noexcept { return started_; }
    // When the connection is overdue: set while a script step or request is outstanding.
    [[nodiscard]] Clock::time_point deadline() const noexcept { return deadline_; }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

    // Step and request timeout, for every connection.
    static void set_timeout(std::chrono::milliseconds timeout) noexcept { timeout_ = timeout; }

    // libevent entry point (both events of the connection).
    void on_io() noexcept;

private:
    enum class State : std::uint8_t { Connecting, Plain, Handshaking, Tls, Closed };

    void drive();
    void run_script();
    void begin_tls();
    bool handshake();
    bool flush();
    bool read_available();
    void feed(std::string_view data);
    void reply_done();
    void want_write();
    void fail(std::string why);
    void arm_deadline() noexcept { deadline_ = Clock::now() + timeout_; }

    static std::chrono::milliseconds timeout_;

    event_base* base_;
    const Target& target_;
    ConnOwner& owner_;
    SslSessionPtr resume_;
    UniqueFd fd_;
    SslPtr ssl_;
    EventPtr read_event_;
    EventPtr write_event_;
    State state_ = State::Connecting;
    Script script_;
    std::size_t step_ = 0;
    bool ready_ = false;
    bool resumed_ = false;
    std::deque<Expectation> expects_;
    ReplyReader reader_;
    std::string out_;  // plaintext not yet accepted by the socket or SSL_write
    Clock::time_point started_{};
    Clock::time_point deadline_ = Clock::time_point::max();
    std::string error_;
};

}  // namespace postern::bench
