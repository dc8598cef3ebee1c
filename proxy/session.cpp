#include "proxy/session.hpp"

#include "protocols/goodbye.hpp"
#include "protocols/replies.hpp"
#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace postern::proxy {
namespace {

using protocols::CloseReason;
using protocols::Peer;

// A read stops when this much is waiting to be consumed; a source stops being read while its
// destination holds more than kWriteHighWater unsent. Together they bound a session's buffers.
constexpr std::size_t kReadHighWater = std::size_t{64} * 1024;
constexpr std::size_t kWriteHighWater = std::size_t{128} * 1024;
// While relaying, a paused source resumes once its destination drained to this, so the pipe
// never runs dry between the two (resuming only at empty halves bulk throughput).
constexpr std::size_t kWriteResume = kWriteHighWater / 2;
// What is owed to a client when the session ends gets this long to leave.
constexpr timeval kCloseFlushTimeout{5, 0};

timeval to_timeval(std::chrono::milliseconds ms) {
    return timeval{.tv_sec = static_cast<time_t>(ms.count() / 1000),
                   .tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

Peer other(Peer peer) {
    return peer == Peer::Client ? Peer::Backend : Peer::Client;
}

void set_nodelay(int fd) {
    const int one = 1;
    // Best effort: mail dialogues are small request/response lines; a failure only costs latency.
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string openssl_reasons(bufferevent* bev) {
    std::string out;
    while (const unsigned long code = bufferevent_get_openssl_error(bev)) {
        const char* reason = ERR_reason_error_string(code);
        if (!out.empty()) {
            out += "; ";
        }
        out += reason != nullptr ? reason : "unknown TLS error";
    }
    return out;
}

}  // namespace

Session::Session(ListenerContext& listener, int fd, std::string client_address)
    : listener_(listener), client_address_(std::move(client_address)), fd_(fd) {}

Session::~Session() = default;

bufferevent* Session::bev(Peer peer) const noexcept {
    return peer == Peer::Client ? client_.get() : backend_.get();
}

void Session::start() {
    set_nodelay(fd_.get());
    handshake_.store = listener_.worker->certs();
    handshake_.strict_sni = listener_.strict_sni;
    if (listener_.spec.tls == conf::TlsMode::Implicit) {
        start_tls();
    } else {
        start_plaintext();
    }
}

void Session::start_plaintext() {
    // No BEV_OPT_CLOSE_ON_FREE: the fd outlives this bufferevent when STARTTLS upgrades it.
    bufferevent* b =
        bufferevent_socket_new(listener_.worker->base(), fd_.get(), BEV_OPT_DEFER_CALLBACKS);
    if (b == nullptr) {
        end_detail_ = "bufferevent_socket_new failed";
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    client_.reset(b);
    bufferevent_setcb(b, &bev_data_cb<Session, &Session::on_client_read>,
                      &bev_data_cb<Session, &Session::on_client_write>,
                      &bev_event_cb<Session, &Session::on_client_event>, this);
    bufferevent_setwatermark(b, EV_READ, 0, kReadHighWater);
    const timeval quiet = to_timeval(listener_.spec.plaintext_timeout);
    bufferevent_set_timeouts(b, &quiet, &quiet);
    bufferevent_enable(b, EV_READ | EV_WRITE);
    state_ = State::Dialogue;
    if (listener_.smtp_probe != nullptr) {
        protocols::MachineSettings settings = listener_.machine;
        settings.smtp_extensions = listener_.smtp_probe->extensions();
        machine_ = protocols::make_machine(settings);
    } else {
        machine_ = protocols::make_machine(listener_.machine);
    }
    feed_event(protocols::Event::ClientConnected);
}

// RFC 3207 §4.2 and the 2011 Postfix/2021 "NO STARTTLS" findings: nothing the client sent after
// its STARTTLS line may be acted on. Reading stops now; what was already read is dropped; the
// reply is flushed; only then does OpenSSL get the socket, so bytes still in the kernel reach
// the handshake and fail it (fail closed).
void Session::begin_upgrade() {
    bufferevent_disable(client_.get(), EV_READ);
    evbuffer* in = bufferevent_get_input(client_.get());
    const std::size_t pipelined = evbuffer_get_length(in);
    if (pipelined > 0) {
        discarded_ += pipelined;
        evbuffer_drain(in, pipelined);
        spdlog::warn(
            "client {} on {} sent {} byte(s) after STARTTLS before the handshake; "
            "discarded (command injection attempt?)",
            client_address_, listener_.name, pipelined);
    }
    upgrading_ = true;
    if (evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) {
        complete_upgrade();
    }
}

void Session::complete_upgrade() {
    upgrading_ = false;
    bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
    client_.reset();  // the plaintext bufferevent; the fd stays open (no CLOSE_ON_FREE)
    state_ = State::Handshaking;
    start_tls();
}

void Session::start_tls() {
    tls::SslPtr ssl = listener_.front->new_ssl(handshake_);
    if (!ssl) {
        end_detail_ = "SSL_new: " + tls::ossl_errors();
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    bufferevent* b = bufferevent_openssl_socket_new(
        listener_.worker->base(), fd_.get(), ssl.get(), BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (b == nullptr) {
        end_detail_ = "bufferevent_openssl_socket_new failed";
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    // From here the bufferevent owns both: CLOSE_ON_FREE frees the SSL and closes the fd.
    (void)ssl.release();
    (void)fd_.release();
    client_.reset(b);
    bufferevent_openssl_set_allow_dirty_shutdown(b, 1);
    bufferevent_setcb(b, &bev_data_cb<Session, &Session::on_client_read>,
                      &bev_data_cb<Session, &Session::on_client_write>,
                      &bev_event_cb<Session, &Session::on_client_event>, this);
    bufferevent_setwatermark(b, EV_READ, 0, kReadHighWater);
    const timeval handshake = to_timeval(listener_.spec.handshake_timeout);
    bufferevent_set_timeouts(b, &handshake, &handshake);
    bufferevent_enable(b, EV_READ | EV_WRITE);
}

void Session::on_tls_ready() {
    state_ = State::Dialogue;
    tls_established_ = true;
    SSL* ssl = bufferevent_openssl_get_ssl(client_.get());
    tls_version_ = SSL_get_version(ssl);
    cipher_ = SSL_get_cipher_name(ssl);
    const timeval idle = to_timeval(listener_.spec.idle_timeout);
    bufferevent_set_timeouts(client_.get(), &idle, &idle);
    if (!machine_) {  // implicit TLS; a STARTTLS session keeps the machine it had
        machine_ = protocols::make_machine(listener_.machine);
    }
    feed_event(protocols::Event::TlsReady);
}

void Session::connect_backend() {
    if (backend_ || state_ != State::Dialogue) {
        return;
    }
    bufferevent* b = bufferevent_socket_new(listener_.worker->base(), -1,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (b == nullptr) {
        end_detail_ = "bufferevent_socket_new failed";
        feed_event(protocols::Event::BackendFailed);
        return;
    }
    backend_.reset(b);
    bufferevent_setcb(b, &bev_data_cb<Session, &Session::on_backend_read>,
                      &bev_data_cb<Session, &Session::on_backend_write>,
                      &bev_event_cb<Session, &Session::on_backend_event>, this);
    bufferevent_setwatermark(b, EV_READ, 0, kReadHighWater);
    const timeval connect = to_timeval(listener_.connect_timeout);
    bufferevent_set_timeouts(b, &connect, &connect);
    backend_connecting_ = true;
    const auto& address = listener_.backend_address;
    if (bufferevent_socket_connect(b, address.get(), static_cast<int>(address.length)) != 0) {
        end_detail_ = std::string("connect: ") + errno_text(errno);
        backend_connecting_ = false;
        backend_.reset();
        feed_event(protocols::Event::BackendFailed);
    }
}

void Session::feed_event(protocols::Event event) {
    if (state_ != State::Dialogue || !machine_) {
        return;
    }
    actions_.clear();
    machine_->on_event(event, actions_);
    apply_actions();
    pump();
}

// The machine may leave complete backend lines unread while it holds client bytes (so its
// output does not depend on how bytes were cut): offer both sides again until neither moves.
void Session::pump() {
    bool progressed = true;
    while (progressed && state_ == State::Dialogue && machine_ && !upgrading_) {
        progressed = feed_once(Peer::Backend) > 0;
        progressed = feed_once(Peer::Client) > 0 || progressed;
    }
    if (state_ == State::Relaying) {
        relay(Peer::Backend);
        relay(Peer::Client);
    }
}

std::size_t Session::feed_once(Peer from) {
    // bev(from) is looked up every time: an action (STARTTLS) may have replaced the bufferevent.
    bufferevent* src = bev(from);
    if (src == nullptr || state_ != State::Dialogue || !machine_ || upgrading_) {
        return 0;
    }
    evbuffer* in = bufferevent_get_input(src);
    const std::size_t length = evbuffer_get_length(in);
    if (length == 0) {
        return 0;
    }
    const auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, -1));
    actions_.clear();
    const std::size_t used =
        std::min(length, machine_->on_bytes(from, std::string_view{data, length}, actions_));
    if (from == Peer::Client) {
        bytes_in_ += used;
    }
    evbuffer_drain(in, used);
    apply_actions();
    return used;
}

void Session::apply_actions() {
    // Handling an action can feed the machine again (a backend failing at once), which reuses
    // actions_: walk a copy.
    protocols::Actions actions = std::move(actions_);
    actions_.clear();
    for (auto& action : actions) {
        if (state_ == State::Closing || state_ == State::Closed) {
            break;
        }
        std::visit(
            [this](auto& a) {
                using A = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<A, protocols::SendToClient>) {
                    write_to(Peer::Client, a.bytes);
                } else if constexpr (std::is_same_v<A, protocols::SendToBackend>) {
                    write_to(Peer::Backend, a.bytes);
                } else if constexpr (std::is_same_v<A, protocols::StartTls>) {
                    if (tls_established_ || listener_.spec.tls != conf::TlsMode::StartTls) {
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
    if (actions_.empty()) {
        actions.clear();
        actions_ = std::move(actions);  // keep the capacity for the next call
    }
}

void Session::start_relay() {
    if (state_ != State::Dialogue) {
        return;
    }
    state_ = State::Relaying;
    machine_.reset();
    for (bufferevent* b : {client_.get(), backend_.get()}) {
        if (b != nullptr) {
            bufferevent_setwatermark(b, EV_WRITE, kWriteResume, 0);
        }
    }
    relay(Peer::Backend);
    relay(Peer::Client);
}

void Session::write_to(Peer to, std::string_view bytes) {
    bufferevent* dst = bev(to);
    if (dst == nullptr || bytes.empty()) {
        return;
    }
    bufferevent_write(dst, bytes.data(), bytes.size());
    if (to == Peer::Client) {
        bytes_out_ += bytes.size();
    }
    throttle(other(to));
}

void Session::relay(Peer from) {
    bufferevent* src = bev(from);
    bufferevent* dst = bev(other(from));
    if (src == nullptr || dst == nullptr || state_ != State::Relaying) {
        return;
    }
    evbuffer* in = bufferevent_get_input(src);
    const std::size_t length = evbuffer_get_length(in);
    if (length == 0) {
        return;
    }
    (from == Peer::Client ? bytes_in_ : bytes_out_) += length;
    if (from == Peer::Client) {
        remember_tail(in, length);
    }
    evbuffer_add_buffer(bufferevent_get_output(dst), in);
    throttle(from);
}

void Session::remember_tail(evbuffer* in, std::size_t length) {
    const std::size_t keep = std::min(length, protocols::kGoodbyeTail);
    evbuffer_ptr at{};
    evbuffer_ptr_set(in, &at, length - keep, EVBUFFER_PTR_SET);
    if (keep == protocols::kGoodbyeTail) {
        tail_.clear();
    } else if (tail_.size() + keep > protocols::kGoodbyeTail) {
        tail_.erase(0, tail_.size() + keep - protocols::kGoodbyeTail);
    }
    const std::size_t old_size = tail_.size();
    tail_.resize(old_size + keep);
    evbuffer_copyout_from(in, &at, tail_.data() + old_size, keep);
}

// Stops reading `from` while what it sent still waits to leave the other side.
void Session::throttle(Peer from) {
    bufferevent* src = bev(from);
    bufferevent* dst = bev(other(from));
    if (src == nullptr || dst == nullptr || paused_[static_cast<int>(from)]) {
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(dst)) > kWriteHighWater) {
        paused_[static_cast<int>(from)] = true;
        bufferevent_disable(src, EV_READ);
    }
}

void Session::on_client_read() {
    if (state_ == State::Closing || state_ == State::Closed || upgrading_) {
        evbuffer_drain(bufferevent_get_input(client_.get()), SIZE_MAX);
        return;
    }
    pump();
}

void Session::on_backend_read() {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    backend_active_ = std::chrono::steady_clock::now();
    pump();
}

void Session::on_client_write() {
    if (state_ == State::Closing) {
        if (evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) {
            finish();
        }
        return;
    }
    if (upgrading_) {
        complete_upgrade();
        return;
    }
    if (paused_[static_cast<int>(Peer::Backend)] && backend_) {
        paused_[static_cast<int>(Peer::Backend)] = false;
        bufferevent_enable(backend_.get(), EV_READ);
        pump();
    }
}

void Session::on_backend_write() {
    if (state_ == State::Closing || state_ == State::Closed || backend_connecting_) {
        return;
    }
    if (paused_[static_cast<int>(Peer::Client)] && client_ && !client_eof_) {
        paused_[static_cast<int>(Peer::Client)] = false;
        bufferevent_enable(client_.get(), EV_READ);
        pump();
    }
    // Half-close: the client finished sending, and everything it sent has reached the backend.
    if (client_eof_ && !backend_write_shut_ &&
        evbuffer_get_length(bufferevent_get_output(backend_.get())) == 0) {
        backend_write_shut_ = true;
        (void)::shutdown(bufferevent_getfd(backend_.get()), SHUT_WR);
    }
}

void Session::on_client_event(short what) {
    if (state_ == State::Closed) {
        return;
    }
    if ((what & BEV_EVENT_CONNECTED) != 0) {
        on_tls_ready();
        return;
    }
    if (state_ == State::Closing) {
        finish();  // the client went away or stopped reading: nothing more can be delivered
        return;
    }
    if (state_ == State::Handshaking) {
        if ((what & BEV_EVENT_TIMEOUT) != 0) {
            end_detail_ = "no complete TLS handshake in time";
            end_ = CloseReason::Timeout;
        } else if (handshake_.refused_name) {
            end_detail_ = "unknown server name refused (strict_sni)";
            end_ = CloseReason::TlsFailed;
        } else {
            const std::string reasons = openssl_reasons(client_.get());
            end_detail_ = !reasons.empty()              ? reasons
                          : (what & BEV_EVENT_EOF) != 0 ? "client closed during the handshake"
                                                        : errno_text(errno);
            end_ = CloseReason::TlsFailed;
        }
        finish();
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) != 0) {
        // Idle means no bytes either way: an IMAP IDLE client is silent while its backend talks.
        const auto quiet = std::chrono::steady_clock::now() - backend_active_;
        if ((what & BEV_EVENT_READING) != 0 && quiet < listener_.spec.idle_timeout) {
            bufferevent_enable(client_.get(), EV_READ);  // re-arms the read timeout
            return;
        }
        end_detail_ = (what & BEV_EVENT_READING) != 0 ? "idle" : "client not reading";
        close_with(CloseReason::Timeout,
                   protocols::replies::timeout_reply(listener_.machine.protocol,
                                                     listener_.machine.hostname));
        return;
    }
    // EOF or error: what the client sent before it went is still delivered.
    if ((what & BEV_EVENT_ERROR) != 0) {
        const std::string reasons = openssl_reasons(client_.get());
        end_detail_ = !reasons.empty() ? reasons : errno_text(errno);
    }
    client_eof_ = true;
    pump();
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    if (!backend_ || backend_connecting_ || (what & BEV_EVENT_ERROR) != 0) {
        close(CloseReason::ClientClosed);
        return;
    }
    bufferevent_disable(client_.get(), EV_READ);
    on_backend_write();  // shuts the backend's write side once it has everything
}

void Session::on_backend_event(short what) {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    if ((what & BEV_EVENT_CONNECTED) != 0) {
        backend_connecting_ = false;
        bufferevent_set_timeouts(backend_.get(), nullptr, nullptr);
        if (!tls_established_) {
            // A plaintext client (require_tls = false) past postern's own dialogue: from now on
            // the session idles like any other.
            const timeval idle = to_timeval(listener_.spec.idle_timeout);
            bufferevent_set_timeouts(client_.get(), &idle, &idle);
        }
        set_nodelay(bufferevent_getfd(backend_.get()));
        bufferevent_enable(backend_.get(), EV_READ | EV_WRITE);
        feed_event(protocols::Event::BackendReady);
        return;
    }
    if (backend_connecting_) {
        backend_connecting_ = false;
        end_detail_ = (what & BEV_EVENT_TIMEOUT) != 0
                          ? "backend connect timed out"
                          : std::string("backend connect: ") + errno_text(EVUTIL_SOCKET_ERROR());
        backend_.reset();
        feed_event(protocols::Event::BackendFailed);
        return;
    }
    backend_eof_ = true;
    if ((what & BEV_EVENT_ERROR) != 0) {
        end_detail_ = std::string("backend: ") + errno_text(EVUTIL_SOCKET_ERROR());
    }
    pump();
    const bool said_goodbye = state_ == State::Relaying &&
                              protocols::ends_with_goodbye(listener_.machine.protocol, tail_);
    close(said_goodbye  ? CloseReason::ClientQuit
          : client_eof_ ? CloseReason::ClientClosed
                        : CloseReason::BackendClosed);
}

void Session::close_with(CloseReason reason, std::string_view reply) {
    write_to(Peer::Client, reply);
    close(reason);
}

void Session::close(CloseReason reason) {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    end_ = reason;
    const bool tls_up = state_ != State::Handshaking;
    state_ = State::Closing;
    machine_.reset();
    backend_.reset();
    if (!client_ || !tls_up || evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) {
        finish();
        return;
    }
    bufferevent_disable(client_.get(), EV_READ);
    // finish() only once everything has left: the write callback at an empty buffer.
    bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
    bufferevent_set_timeouts(client_.get(), nullptr, &kCloseFlushTimeout);
}

void Session::abort(CloseReason reason) {
    if (state_ == State::Closed) {
        return;
    }
    end_ = reason;
    finish();
}

void Session::fail_internal(const char* what) {
    spdlog::error("internal error in session client={}: {}", client_address_, what);
    if (state_ == State::Closed) {
        return;
    }
    end_detail_ = what;
    end_ = CloseReason::Internal;
    finish();
}

void Session::finish() {
    if (state_ == State::Closed) {
        return;
    }
    state_ = State::Closed;
    machine_.reset();
    backend_.reset();
    if (client_) {
        bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
        bufferevent_disable(client_.get(), EV_READ | EV_WRITE);
        if (tls_established_) {
            // close_notify, best effort: the socket is non-blocking and we do not wait.
            (void)SSL_shutdown(bufferevent_openssl_get_ssl(client_.get()));
            ERR_clear_error();
        }
    }
    log_end();
    listener_.worker->retire(this);
}

void Session::log_end() const {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
    const char* cert = handshake_.cert != nullptr ? handshake_.cert->primary_name().c_str() : "-";
    const std::string sni = handshake_.sni.empty() ? "-" : sanitize(handshake_.sni);
    // The admin must act on internal errors and should notice a backend that refuses us.
    const auto level = end_ == CloseReason::Internal             ? spdlog::level::err
                       : end_ == CloseReason::BackendUnreachable ? spdlog::level::warn
                                                                 : spdlog::level::info;
    spdlog::log(level,
                "session end client={} listener={} protocol={} sni={} cert={} tls={} cipher={} "
                "backend={} bytes_in={} bytes_out={} duration_ms={} end={}{}{}{}",
                client_address_, listener_.name, conf::to_string(listener_.spec.protocol), sni,
                cert, tls_version_, cipher_, listener_.backend_name, bytes_in_, bytes_out_, ms,
                protocols::to_string(end_), end_detail_.empty() ? "" : " detail=\"",
                sanitize(end_detail_, 200, true), end_detail_.empty() ? "" : "\"");
}

}  // namespace postern::proxy
