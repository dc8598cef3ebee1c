#include "tests/bench/conn.hpp"

#include <openssl/err.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <span>

namespace postern::bench {
namespace {

// One read buffer for every connection: the generator is single-threaded and feeds each chunk
// to the reply reader before the next read.
std::span<char> read_buffer() {
    static std::array<char, 256 * 1024> buffer;
    return buffer;
}

// A busy connection yields after this many reads so that others get their turn; it is woken
// again at once (event_active), since OpenSSL may hold decrypted bytes the socket no longer
// signals.
constexpr int kReadsPerWakeup = 16;

void io_cb(evutil_socket_t /*fd*/, short /*what*/, void* self) noexcept {
    static_cast<Conn*>(self)->on_io();
}

std::string ssl_error_text(int ssl_error) {
    std::string text = "TLS error " + std::to_string(ssl_error);
    if (ssl_error == SSL_ERROR_SYSCALL && errno != 0) {
        text += std::string(": ") + std::strerror(errno);
    }
    while (const unsigned long code = ERR_get_error()) {
        std::array<char, 256> buf{};
        ERR_error_string_n(code, buf.data(), buf.size());
        text += "; ";
        text += buf.data();
    }
    return text;
}

std::string printable(std::string_view bytes) {
    std::string out(bytes);
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
            c = '?';
        }
    }
    return out;
}

}  // namespace

std::chrono::milliseconds Conn::timeout_{10'000};

Conn::Conn(event_base* base, const Target& target, ConnOwner& owner, SSL_SESSION* resume)
    : base_(base), target_(target), owner_(owner) {
    // Our own copy: the store may replace its newest ticket before STARTTLS, and one
    // SSL_SESSION offered by several connections at once is refused by servers about one time
    // in ten (OpenSSL 3.0 client side; measured: 93 % resumed at 16 in flight, 100 % with a copy
    // each, as separate clients would have).
    if (resume != nullptr) {
        resume_.reset(SSL_SESSION_dup(resume));
    }
    script_ = connect_script(target.protocol, target.tls);
    if (target.login) {
        append_login(script_, target.protocol, target.tls);
    }
}

Conn::~Conn() {
    close();
}

bool Conn::start() {
    started_ = Clock::now();
    arm_deadline();
    fd_ = UniqueFd{
        ::socket(target_.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (fd_.get() < 0) {
        error_ = std::string("socket: ") + std::strerror(errno);
        state_ = State::Closed;
        return false;
    }
    const int one = 1;
    (void)::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&target_.address),
                  target_.address_length) != 0 &&
        errno != EINPROGRESS) {
        error_ = std::string("connect: ") + std::strerror(errno);
        close();
        return false;
    }
    read_event_.reset(event_new(base_, fd_.get(), EV_READ | EV_PERSIST, &io_cb, this));
    write_event_.reset(event_new(base_, fd_.get(), EV_WRITE, &io_cb, this));
    if (!read_event_ || !write_event_) {
        error_ = "event_new failed";
        close();
        return false;
    }
    want_write();  // the connect completes when the socket becomes writable
    return true;
}

void Conn::close() noexcept {
    read_event_.reset();  // event_free deletes a pending event first
    write_event_.reset();
    if (ssl_ && state_ == State::Tls) {
        // Send close_notify (once, not waiting for the peer's). Without it OpenSSL marks the
        // session not resumable when the SSL is freed, and its tickets would be wasted.
        ERR_clear_error();
        (void)SSL_shutdown(ssl_.get());
        ERR_clear_error();
    }
    ssl_.reset();
    fd_.reset();
    state_ = State::Closed;
    expects_.clear();
    deadline_ = Clock::time_point::max();
}

void Conn::fail(std::string why) {
    if (state_ == State::Closed) {
        return;
    }
    error_ = std::move(why);
    close();
    owner_.on_failed(*this, error_);
}

void Conn::want_write() {
    if (write_event_) {
        event_add(write_event_.get(), nullptr);
    }
}

void Conn::on_io() noexcept {
    try {
        drive();
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    } catch (...) {
        fail("unknown exception");
    }
}

void Conn::drive() {
    if (state_ == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err == EINPROGRESS || err == EALREADY) {
            want_write();
            return;
        }
        if (err != 0) {
            fail(std::string("connect: ") + std::strerror(err));
            return;
        }
        state_ = State::Plain;
        event_add(read_event_.get(), nullptr);
        run_script();
    }
    // Each pass either makes progress or returns waiting for an event; a STARTTLS reply found
    // while reading switches to Handshaking and goes round again.
    for (int pass = 0; pass < 4 && state_ != State::Closed; ++pass) {
        if (state_ == State::Handshaking && !handshake()) {
            return;
        }
        if (!flush()) {
            return;
        }
        const State before = state_;
        if (!read_available() || !flush()) {  // replies may have queued the next command
            return;
        }
        if (state_ == before) {
            return;
        }
    }
}

void Conn::run_script() {
    while (step_ < script_.size() && state_ != State::Closed) {
        const Step& step = script_[step_];
        switch (step.kind) {
            case Step::Kind::Send:
                out_ += step.text;
                ++step_;
                break;
            case Step::Kind::Expect:
                ++step_;
                arm_deadline();
                expects_.push_back(step.expect);
                if (expects_.size() == 1) {
                    reader_.expect(expects_.front());
                }
                return;
            case Step::Kind::StartTls:
                ++step_;
                if (!out_.empty()) {
                    fail("internal: plaintext still unsent at STARTTLS");
                    return;
                }
                begin_tls();
                return;
        }
    }
    if (state_ != State::Closed && !ready_) {
        ready_ = true;
        deadline_ = Clock::time_point::max();
        owner_.on_ready(*this);
    }
}

void Conn::begin_tls() {
    arm_deadline();
    ssl_.reset(SSL_new(target_.tls_context));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_.get()) != 1) {
        fail("SSL_new: " + ssl_error_text(SSL_ERROR_SSL));
        return;
    }
    SSL_set_connect_state(ssl_.get());
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is the call it makes.
    if (!target_.sni.empty() &&
        SSL_ctrl(ssl_.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(target_.sni.c_str())) != 1) {
        fail("SNI: " + ssl_error_text(SSL_ERROR_SSL));
        return;
    }
    if (resume_) {
        (void)SSL_set_session(ssl_.get(), resume_.get());  // takes its own reference
    }
    state_ = State::Handshaking;
}

bool Conn::handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
        state_ = State::Tls;
        resumed_ = SSL_session_reused(ssl_.get()) == 1;
        run_script();
        return state_ != State::Closed;
    }
    const int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ) {
        return false;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        want_write();
        return false;
    }
    fail("handshake: " + ssl_error_text(err));
    return false;
}

bool Conn::flush() {
    while (!out_.empty()) {
        if (state_ == State::Tls) {
            ERR_clear_error();
            const int n = SSL_write(ssl_.get(), out_.data(),
                                    static_cast<int>(std::min<std::size_t>(out_.size(), INT_MAX)));
            if (n > 0) {
                out_.erase(0, static_cast<std::size_t>(n));
                continue;
            }
            const int err = SSL_get_error(ssl_.get(), n);
            if (err == SSL_ERROR_WANT_WRITE) {
                want_write();
                return true;
            }
            if (err == SSL_ERROR_WANT_READ) {
                return true;
            }
            fail("write: " + ssl_error_text(err));
            return false;
        }
        if (state_ != State::Plain) {
            return true;  // waiting for the handshake
        }
        const ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
        if (n > 0) {
            out_.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            want_write();
            return true;
        }
        fail(std::string("send: ") + std::strerror(errno));
        return false;
    }
    return true;
}

bool Conn::read_available() {
    const State entered = state_;
    const std::span<char> buf = read_buffer();
    for (int i = 0; i < kReadsPerWakeup; ++i) {
        std::size_t got = 0;
        if (state_ == State::Tls) {
            ERR_clear_error();
            const int n = SSL_read(ssl_.get(), buf.data(), static_cast<int>(buf.size()));
            if (n <= 0) {
                const int err = SSL_get_error(ssl_.get(), n);
                if (err == SSL_ERROR_WANT_READ) {
                    return true;
                }
                if (err == SSL_ERROR_WANT_WRITE) {
                    want_write();
                    return true;
                }
                fail(err == SSL_ERROR_ZERO_RETURN ||
                             (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
                         ? std::string("closed by the server")
                         : "read: " + ssl_error_text(err));
                return false;
            }
            got = static_cast<std::size_t>(n);
        } else if (state_ == State::Plain) {
            const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
            if (n == 0) {
                fail("closed by the server");
                return false;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    return true;
                }
                fail(std::string("recv: ") + std::strerror(errno));
                return false;
            }
            got = static_cast<std::size_t>(n);
        } else {
            return true;
        }
        feed({buf.data(), got});
        if (state_ != entered) {
            return state_ != State::Closed;
        }
    }
    if (read_event_) {
        event_active(read_event_.get(), EV_READ, 0);
    }
    return true;
}

void Conn::feed(std::string_view data) {
    while (!data.empty() && state_ != State::Closed) {
        if (expects_.empty()) {
            fail("unexpected data from the server: " + printable(data.substr(0, 80)));
            return;
        }
        const ReplyReader::Result r = reader_.feed(data);
        data.remove_prefix(r.used);
        if (r.status == ReplyReader::Status::Failed) {
            fail("error reply: " + reader_.error());
            return;
        }
        if (r.status == ReplyReader::Status::Done) {
            const State before = state_;
            reply_done();
            if (state_ != before && !data.empty()) {
                fail("bytes after the STARTTLS reply");  // CVE-2011-0411 shape; never expected
                return;
            }
        }
    }
}

void Conn::reply_done() {
    const std::uint64_t payload = reader_.payload();
    expects_.pop_front();
    if (!expects_.empty()) {
        reader_.expect(expects_.front());
    }
    if (!ready_) {
        run_script();
        return;
    }
    deadline_ = expects_.empty() ? Clock::time_point::max() : Clock::now() + timeout_;
    owner_.on_reply(*this, payload);
}

void Conn::request(const Request& request) {
    if (state_ == State::Closed) {
        return;
    }
    out_ += request.command;
    expects_.push_back(request.expect);
    if (expects_.size() == 1) {
        reader_.expect(expects_.front());
    }
    arm_deadline();
    (void)flush();
}

}  // namespace postern::bench
