#pragma once
// One side of a session: a non-blocking socket, the TLS state on it once there is one, and its
// two buffers. The socket is registered once, edge-triggered for reading and writing, and
// never re-armed: the stream remembers whether the kernel last said "would block" in each
// direction, so a relayed megabyte costs its reads and writes and no epoll_ctl calls.

#include "proxy/byte_buffer.hpp"
#include "proxy/event.hpp"
#include "tls/ossl.hpp"

#include <cstdint>
#include <string>

namespace postern::proxy {

enum class Io : std::uint8_t {
    Ok,     // some bytes moved (or the handshake finished)
    Again,  // nothing now; the socket's next edge resumes it
    Eof,    // the peer finished sending (FIN, or TLS close_notify)
    Error,  // the connection is broken; error() says why
};

class Stream {
public:
    explicit Stream(BufferPool& pool) : in(pool), out(pool) {}
    // The event and the TLS BIO callback hold pointers to the stream's owner and to the stream.
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    Stream(Stream&&) = delete;
    Stream& operator=(Stream&&) = delete;
    ~Stream() = default;

    // Takes `fd` (non-blocking) and registers it with `base`; `callback` gets EV_READ/EV_WRITE.
    [[nodiscard]] bool open(event_base* base, UniqueFd fd, event_callback_fn callback, void* arg);
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] bool is_open() const noexcept { return fd_.get() >= 0; }
    void close() noexcept;

    // From now on reads and writes go through `ssl`, which starts its server handshake.
    void start_tls(tls::SslPtr ssl);
    [[nodiscard]] SSL* ssl() const noexcept { return ssl_.get(); }
    [[nodiscard]] Io handshake();

    // Reads at most `limit` bytes onto the end of `into`, within its chunk unless that is full.
    [[nodiscard]] Io read_into(ByteBuffer& into, std::size_t limit);
    // Writes `out` until it is empty or the socket is full.
    [[nodiscard]] Io flush();
    // The socket said readable/writable (an edge from the event loop).
    void on_ready(short what) noexcept;
    // Worth trying a read / a write now (no "would block" seen since the last edge).
    [[nodiscard]] bool can_read() const noexcept { return can_read_; }
    [[nodiscard]] bool can_write() const noexcept { return can_write_; }
    // Bytes written but not yet acknowledged by the peer (the kernel's send queue): a client
    // that reads nothing leaves them there, however much the kernel's autotuning would take.
    [[nodiscard]] std::size_t kernel_unsent() const noexcept;
    // Sends close_notify best-effort (never waits).
    void shutdown_tls() noexcept;
    // Asks the loop to call back as if the socket had become readable (fairness: a busy
    // stream yields after its budget and continues on the loop's next turn).
    void reschedule() noexcept;

    [[nodiscard]] const std::string& error() const noexcept { return error_; }

    ByteBuffer in;     // read, not yet consumed (protocol dialogue only)
    ByteBuffer out;    // waiting to be written
    bool eof = false;  // the peer finished sending

private:
    Io tls_result(int ret, bool reading);
    // The last recv emptied the socket and (TLS) OpenSSL holds no unread record.
    [[nodiscard]] bool drained() const noexcept;
    // The socket BIO's callback: records whether OpenSSL's last recv got less than it asked.
    static long on_bio(BIO* bio, int oper, const char* argp, std::size_t len, int argi, long argl,
                       int ret, std::size_t* processed);

    UniqueFd fd_;
    tls::SslPtr ssl_;
    EventPtr event_;
    std::string error_;
    bool tls_failed_ = false;       // a fatal TLS error: no close_notify may follow
    bool early_close_ = false;      // the loop reports EV_CLOSED (epoll: EPOLLRDHUP)
    bool peer_closed_ = false;      // EV_CLOSED seen: read until recv says 0
    bool last_recv_short_ = false;  // the last recv (ours, or OpenSSL's) got less than asked
    bool can_read_ = true;
    bool can_write_ = true;
    bool read_wants_write_ = false;  // TLS: a read stopped on WANT_WRITE
    bool write_wants_read_ = false;  // TLS: a write stopped on WANT_READ
};

}  // namespace postern::proxy
