#include "proxy/stream.hpp"

#include "proxy/log.hpp"

#include <openssl/err.h>

#include <cerrno>
#include <climits>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace postern::proxy {

bool Stream::open(event_base* base, UniqueFd fd, event_callback_fn callback, void* arg) {
    fd_ = std::move(fd);
    // EV_CLOSED (EPOLLRDHUP) reports a FIN that came with the last data, which lets a short
    // plaintext read count as "drained" (no extra recv that only says EAGAIN).
    early_close_ = (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) != 0;
    const short what = EV_READ | EV_WRITE | EV_PERSIST | EV_ET | (early_close_ ? EV_CLOSED : 0);
    event_.reset(event_new(base, fd_.get(), what, callback, arg));
    if (!event_ || event_add(event_.get(), nullptr) != 0) {
        error_ = "cannot register the socket with the event loop";
        return false;
    }
    return true;
}

void Stream::close() noexcept {
    // Deleted, not freed: this may run inside the event's own callback. The destructor frees it.
    if (event_) {
        event_del(event_.get());
    }
    ssl_.reset();
    fd_.reset();
    in.clear();
    out.clear();
}

void Stream::start_tls(tls::SslPtr ssl) {
    ssl_ = std::move(ssl);
    // A socket BIO that does not own the fd (BIO_NOCLOSE): the stream closes it.
    SSL_set_fd(ssl_.get(), fd_.get());
    SSL_set_accept_state(ssl_.get());
    // Partial writes let a full socket take what it can; the buffer may move between retries
    // (ByteBuffer compacts).
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Read-ahead: one recv takes whatever the kernel holds (a header and its body, or several
    // records) instead of a header read and a body read per record. OpenSSL then holds whole
    // records the socket no longer reports, so "drained" is SSL_has_pending() == 0 plus a
    // short last recv, which the BIO callback remembers.
    SSL_set_read_ahead(ssl_.get(), 1);
    last_recv_short_ = false;  // the plaintext reads before STARTTLS say nothing about TLS
    BIO* rbio = SSL_get_rbio(ssl_.get());
    BIO_set_callback_arg(rbio, reinterpret_cast<char*>(this));
    BIO_set_callback_ex(rbio, &Stream::on_bio);
}

Io Stream::handshake() {
    ERR_clear_error();
    const int ret = SSL_do_handshake(ssl_.get());
    if (ret == 1) {
        // The handshake runs on any edge, a write edge too, and it may have read what a read
        // edge still to be reported announced (the client's Finished and its first command,
        // which read-ahead takes in one recv). Once reported, that edge no longer says
        // "readable", so the stream must not wait for it.
        can_read_ = !drained();
        return Io::Ok;
    }
    return tls_result(ret, true);
}

Io Stream::tls_result(int ret, bool reading) {
    switch (SSL_get_error(ssl_.get(), ret)) {
        case SSL_ERROR_WANT_READ:
            if (reading) {
                can_read_ = false;
            } else {
                can_write_ = false;
                write_wants_read_ = true;
            }
            return Io::Again;
        case SSL_ERROR_WANT_WRITE:
            if (reading) {
                can_read_ = false;
                read_wants_write_ = true;
            } else {
                can_write_ = false;
            }
            return Io::Again;
        case SSL_ERROR_ZERO_RETURN:
            return Io::Eof;
        case SSL_ERROR_SYSCALL: {
            const int err = errno;
            error_ = tls::ossl_errors("");
            if (error_.empty()) {
                if (ret == 0 || err == 0) {
                    return Io::Eof;  // EOF without close_notify
                }
                error_ = errno_text(err);
            }
            tls_failed_ = true;
            return Io::Error;
        }
        default:
            error_ = tls::ossl_errors("TLS error");
            tls_failed_ = true;
            return Io::Error;
    }
}

Io Stream::read_into(ByteBuffer& into, std::size_t limit) {
    if (limit == 0) {
        return Io::Again;
    }
    // Within the chunk it has; past it only when full (a dialogue line longer than a chunk).
    const std::size_t room = into.spare() > 0 ? into.spare() : limit;
    const std::size_t want = std::min({limit, room, std::size_t{INT_MAX}});
    char* at = into.reserve(want);
    if (ssl_) {
        ERR_clear_error();
        const int ret = SSL_read(ssl_.get(), at, static_cast<int>(want));
        if (ret > 0) {
            into.commit(static_cast<std::size_t>(ret));
            if (drained()) {
                can_read_ = false;
            }
            return Io::Ok;
        }
        into.consume(0);  // hands an unused chunk back to the pool
        return tls_result(ret, true);
    }
    for (;;) {
        const ssize_t n = ::recv(fd_.get(), at, want, 0);
        if (n > 0) {
            into.commit(static_cast<std::size_t>(n));
            last_recv_short_ = static_cast<std::size_t>(n) < want;
            if (drained()) {
                can_read_ = false;
            }
            return Io::Ok;
        }
        into.consume(0);
        if (n == 0) {
            return Io::Eof;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            can_read_ = false;
            return Io::Again;
        }
        error_ = errno_text(errno);
        return Io::Error;
    }
}

Io Stream::flush() {
    bool moved = false;
    while (!out.empty()) {
        const std::size_t size = std::min(out.size(), std::size_t{INT_MAX});
        if (ssl_) {
            ERR_clear_error();
            const int ret = SSL_write(ssl_.get(), out.data(), static_cast<int>(size));
            if (ret <= 0) {
                const Io result = tls_result(ret, false);
                return result == Io::Again && moved ? Io::Ok : result;
            }
            out.consume(static_cast<std::size_t>(ret));
        } else {
            const ssize_t n = ::send(fd_.get(), out.data(), size, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    can_write_ = false;
                    return moved ? Io::Ok : Io::Again;
                }
                error_ = errno_text(errno);
                return Io::Error;
            }
            out.consume(static_cast<std::size_t>(n));
        }
        moved = true;
    }
    return Io::Ok;
}

bool Stream::drained() const noexcept {
    // The last recv came up short, so the socket was empty then and any later byte or FIN
    // raises a new edge; a FIN already queued was reported as EV_CLOSED, so read on to see it.
    // Under TLS, OpenSSL must also hold no record of its own (read-ahead).
    return last_recv_short_ && early_close_ && !peer_closed_ &&
           (!ssl_ || SSL_has_pending(ssl_.get()) == 0);
}

long Stream::on_bio(BIO* bio, int oper, const char* /*argp*/, std::size_t len, int /*argi*/,
                    long /*argl*/, int ret, std::size_t* processed) {
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        auto* self = reinterpret_cast<Stream*>(BIO_get_callback_arg(bio));
        self->last_recv_short_ = ret > 0 && processed != nullptr && *processed < len;
    }
    return ret;
}

void Stream::on_ready(short what) noexcept {
    if ((what & EV_CLOSED) != 0) {
        peer_closed_ = true;
        can_read_ = true;
    }
    if ((what & EV_READ) != 0) {
        can_read_ = true;
        if (write_wants_read_) {
            write_wants_read_ = false;
            can_write_ = true;
        }
    }
    if ((what & EV_WRITE) != 0) {
        can_write_ = true;
        if (read_wants_write_) {
            read_wants_write_ = false;
            can_read_ = true;
        }
    }
}

void Stream::shutdown_tls() noexcept {
    if (ssl_ && !tls_failed_ && SSL_is_init_finished(ssl_.get()) == 1) {
        (void)SSL_shutdown(ssl_.get());
    }
    ERR_clear_error();
}

std::size_t Stream::kernel_unsent() const noexcept {
    int queued = 0;
    if (!is_open() || ::ioctl(fd_.get(), SIOCOUTQ, &queued) != 0 || queued < 0) {
        return 0;
    }
    return static_cast<std::size_t>(queued);
}

void Stream::reschedule() noexcept {
    if (event_) {
        event_active(event_.get(), EV_READ, 1);
    }
}

}  // namespace postern::proxy
