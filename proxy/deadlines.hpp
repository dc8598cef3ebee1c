#pragma once
// When a session's one timer is due and which timeout that is: a pure value (no sockets, no
// libevent) holding the session's timestamps and limits. The session moves the timestamps as
// bytes move (a store each, never a timer call), arms its timer for next(), and asks
// expired() when the timer fires; an early fire just re-arms for what is left.
//
// The timeouts: the TLS handshake (handshake_timeout); the quiet limit, no bytes either way
// (plaintext_timeout on a STARTTLS listener until TLS is up or a plaintext client was handed
// to the backend, then idle_timeout); postern's own plaintext dialogue as a whole
// (plaintext_timeout from the connection: a client sending NOOP every few seconds must not
// stay before TLS for ever); a client not reading what it is owed for the same quiet limit; the
// backend connect (its limit belongs to the BackendConnector); the close flush (kCloseFlush for
// what is owed to a client once the session ends). While postern drains (proxy/drain.hpp),
// also kDrainQuiet without a byte either way, and after a look that found the session busy,
// kDrainQuiet more.

#include <chrono>
#include <cstdint>
#include <optional>

namespace postern::proxy {

enum class Timeout : std::uint8_t {
    None,
    Handshake,         // no complete TLS handshake in time
    Idle,              // no bytes either way for the quiet limit
    Plaintext,         // postern's plaintext dialogue went on for plaintext_timeout
    ClientNotReading,  // bytes owed to the client have not moved for the quiet limit
    BackendConnect,    // the backend did not answer the connect in time
    CloseFlush,        // closing: what the client is owed did not leave in time
    DrainQuiet,        // postern drains: no bytes either way for kDrainQuiet (Session looks
                       // whether it is between commands)
};

class Deadlines {
public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;

    static constexpr std::chrono::seconds kCloseFlush{5};
    // Silence that lets a draining session end politely: long enough for a client's next
    // command after a reply, short next to any shutdown_timeout worth setting.
    static constexpr std::chrono::seconds kDrainQuiet{2};

    struct Limits {
        std::chrono::milliseconds handshake{};
        std::chrono::milliseconds idle{};
        std::chrono::milliseconds plaintext{};  // STARTTLS listeners, before TLS
    };
    struct Due {
        Timeout which = Timeout::None;
        TimePoint at{};
    };

    // A session accepted at `now`: open (a plaintext dialogue) until handshake() or closing().
    Deadlines(const Limits& limits, TimePoint now) noexcept
        : limits_(limits), accepted_(now), client_seen_(now) {}

    // The phases the timer tells apart.
    void handshake(TimePoint now) noexcept {
        phase_ = Phase::Handshake;
        phase_due_ = now + limits_.handshake;
        client_seen_ = now;  // a drain's quiet counts from here (kDrainQuiet)
    }
    // The plaintext dialogue of a STARTTLS listener starts now (after a PROXY header).
    void plaintext(TimePoint now) noexcept {
        phase_ = Phase::Open;
        client_seen_ = now;
        plaintext_due_ = accepted_ + limits_.plaintext;
    }
    // TLS is up: the dialogue starts, the idle limit applies, the client counts as just seen.
    void tls_ready(TimePoint now) noexcept {
        phase_ = Phase::Open;
        full_idle_ = true;
        plaintext_due_.reset();
        client_seen_ = now;
    }
    void closing(TimePoint now) noexcept {
        phase_ = Phase::Closing;
        phase_due_ = now + kCloseFlush;
    }

    // The backend: connecting until `due`, then connected (or failed: no deadline).
    void connecting(TimePoint due) noexcept { connect_due_ = due; }
    void connect_failed() noexcept { connect_due_.reset(); }
    // A plaintext client past postern's own dialogue now idles like any other.
    void backend_ready() noexcept {
        connect_due_.reset();
        full_idle_ = true;
        plaintext_due_.reset();
    }

    // postern drains: a session quiet for kDrainQuiet (already, or from now on) is due.
    void draining() noexcept { draining_ = true; }
    // The session was due but busy (a reply owed, a command half sent): look again once it
    // has been quiet for kDrainQuiet from `now`.
    void drain_busy(TimePoint now) noexcept { drain_looked_ = now; }

    // Traffic.
    void client_seen(TimePoint now) noexcept { client_seen_ = now; }
    void backend_seen(TimePoint now) noexcept { backend_seen_ = now; }
    // The client's turn to read starts (its buffer was empty) or it took some bytes.
    void client_flushed(TimePoint now) noexcept { client_flushed_ = now; }

    [[nodiscard]] std::chrono::milliseconds quiet_limit() const noexcept {
        return full_idle_ ? limits_.idle : limits_.plaintext;
    }
    // The earliest deadline; `client_owed`: bytes wait to be written to the client.
    [[nodiscard]] Due next(bool client_owed) const noexcept;
    // The timeout that has passed at `now` (None: the timer fired early).
    [[nodiscard]] Timeout expired(TimePoint now, bool client_owed) const noexcept;

private:
    enum class Phase : std::uint8_t { Open, Handshake, Closing };

    // Draining: kDrainQuiet after the last byte either way or the last busy look.
    [[nodiscard]] TimePoint drain_due() const noexcept;

    Limits limits_;
    Phase phase_ = Phase::Open;
    bool full_idle_ = false;  // idle_timeout rather than plaintext_timeout
    bool draining_ = false;
    TimePoint drain_looked_{};  // drain_busy()
    TimePoint phase_due_{};     // Handshake, Closing
    TimePoint accepted_;
    std::optional<TimePoint> plaintext_due_;  // postern's own plaintext dialogue ends by then
    std::optional<TimePoint> connect_due_;
    TimePoint client_seen_;
    TimePoint backend_seen_{};
    TimePoint client_flushed_{};
};

}  // namespace postern::proxy
