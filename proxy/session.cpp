#include "proxy/session.hpp"

#include "protocols/goodbye.hpp"
#include "protocols/replies.hpp"
#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace postern::proxy {
namespace {

using protocols::CloseReason;
using protocols::Peer;

// Back-pressure: a source is not read while its destination holds kHighWater unsent bytes
// (while relaying, the source is read straight into that destination's buffer). During the
// dialogue the machine's unconsumed input is capped at kDialogueIn as well.
constexpr std::size_t kHighWater = BufferPool::kChunk * 2;
constexpr std::size_t kDialogueIn = BufferPool::kChunk;
// One event moves at most this many rounds of reads and writes before the session yields to
// the others on the loop (and continues on its next turn).
constexpr int kRounds = 8;
// What is owed to a client when the session ends gets this long to leave.
constexpr std::chrono::seconds kCloseFlushTimeout{5};

Peer other(Peer peer) {
    return peer == Peer::Client ? Peer::Backend : Peer::Client;
}

void set_nodelay(int fd) {
    const int one = 1;
    // Best effort: mail dialogues are small request/response lines; a failure only costs latency.
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

Session::Session(ListenerContext& listener, UniqueFd fd, std::string client_address)
    : listener_(listener),
      client_address_(std::move(client_address)),
      client_(listener.worker->buffers()),
      backend_(listener.worker->buffers()) {
    if (!client_.open(listener_.worker->base(), std::move(fd),
                      &event_cb<Session, &Session::on_client_io>, this)) {
        end_detail_ = client_.error();
    }
}

Session::~Session() = default;

void Session::start() {
    if (!end_detail_.empty()) {
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    event_callback_fn on_time = &event_cb<Session, &Session::on_timer>;
    timer_.reset(evtimer_new(listener_.worker->base(), on_time, this));
    if (!timer_) {
        end_detail_ = "cannot create a timer";
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    set_nodelay(client_.fd());
    handshake_.store = listener_.worker->certs();
    handshake_.strict_sni = listener_.strict_sni;
    if (listener_.spec.tls == conf::TlsMode::Implicit) {
        complete_upgrade();  // straight to the handshake
        progress();
        return;
    }
    state_ = State::Dialogue;
    arm_timer();
    if (listener_.backend_ehlo != nullptr) {
        protocols::MachineSettings settings = listener_.machine;
        settings.smtp_extensions = listener_.backend_ehlo->extensions();
        machine_ = protocols::make_machine(settings);
    } else {
        machine_ = protocols::make_machine(listener_.machine);
    }
    feed_event(protocols::Event::ClientConnected);
    progress();
}

// --- the event entry points ----------------------------------------------------------------

void Session::on_client_io(short what) {
    client_.on_ready(what);
    progress();
}

void Session::on_backend_io(short what) {
    backend_.on_ready(what);
    if (backend_connecting_) {
        if (const int err = backend_.connect_error(); err != 0) {
            backend_failed(std::string("backend connect: ") + errno_text(err));
        } else if ((what & EV_WRITE) != 0) {
            on_backend_connected();
        }
    }
    progress();
}

void Session::on_timer(short /*what*/) {
    if (state_ == State::Closed) {
        return;
    }
    const auto now = Clock::now();
    if (state_ == State::Closing) {
        if (now >= close_deadline_) {
            finish();  // the client stopped reading what it was owed
            return;
        }
    } else if (state_ == State::Handshaking) {
        if (now - handshake_started_ >= listener_.spec.handshake_timeout) {
            end_detail_ = "no complete TLS handshake in time";
            end_ = CloseReason::Timeout;
            finish();
            return;
        }
    } else {
        if (backend_connecting_ && now - connect_started_ >= listener_.connect_timeout) {
            backend_failed("backend connect timed out");
            progress();
            return;
        }
        // Idle means no bytes either way: an IMAP IDLE client is silent while its backend talks.
        const auto limit = quiet_limit();
        const bool idle = now - std::max(client_seen_, backend_seen_) >= limit;
        const bool stuck = !client_.out.empty() && now - client_flushed_ >= limit;
        if (idle || stuck) {
            end_detail_ = stuck ? "client not reading" : "idle";
            close_with(CloseReason::Timeout,
                       protocols::replies::timeout_reply(listener_.machine.protocol,
                                                         listener_.machine.hostname));
            progress();
            return;
        }
    }
    arm_timer();
}

// --- moving bytes ---------------------------------------------------------------------------

void Session::progress() {
    for (int round = 0; round < kRounds; ++round) {
        if (state_ == State::Closed) {
            return;
        }
        if (state_ == State::Handshaking) {
            if (!step_handshake()) {
                return;
            }
            continue;
        }
        if (state_ == State::Closing) {
            flush(Peer::Client);
            if (state_ == State::Closing && (client_.out.empty() || client_broken_)) {
                finish();
            }
            return;
        }
        bool moved = flush(Peer::Client);
        moved = flush(Peer::Backend) || moved;
        moved = read(Peer::Backend) || moved;
        moved = read(Peer::Client) || moved;
        if (state_ == State::Dialogue) {
            moved = pump_machine() || moved;
        }
        moved = after_io() || moved;
        if (!moved) {
            return;
        }
    }
    // The budget is spent and there may be more: continue on the loop's next turn.
    client_.reschedule();
}

bool Session::step_handshake() {
    const Io result = client_.handshake();
    if (result == Io::Ok) {
        on_tls_ready();
        return state_ == State::Dialogue;
    }
    if (result == Io::Again) {
        return false;
    }
    end_ = CloseReason::TlsFailed;
    end_detail_ = handshake_.refused_name ? "unknown server name refused (strict_sni)"
                  : result == Io::Eof     ? "client closed during the handshake"
                                          : client_.error();
    finish();
    return false;
}

bool Session::flush(Peer to) {
    Stream& s = stream(to);
    if (!s.is_open() || s.out.empty() || !s.can_write() ||
        (to == Peer::Backend && backend_connecting_)) {
        return false;
    }
    switch (s.flush()) {
        case Io::Ok:
            if (to == Peer::Client) {
                client_flushed_ = Clock::now();
            }
            return true;
        case Io::Again:
        case Io::Eof:
            return false;
        case Io::Error:
            if (to == Peer::Client) {
                client_broken_ = true;
                end_detail_ = client_.error();
                close(CloseReason::ClientClosed);
            } else {
                end_detail_ = "backend: " + backend_.error();
                backend_.eof = true;
            }
            return true;
    }
    return false;
}

bool Session::read(Peer from) {
    Stream& src = stream(from);
    Stream& dst = stream(other(from));
    if (!src.is_open() || src.eof || !src.can_read() ||
        (from == Peer::Backend && backend_connecting_) || (from == Peer::Client && upgrading_)) {
        return false;
    }
    const bool relaying = state_ == State::Relaying;
    if (relaying && !dst.is_open()) {
        return false;
    }
    ByteBuffer& into = relaying ? dst.out : src.in;
    std::size_t limit = 0;
    if (relaying) {
        limit = kHighWater - std::min(kHighWater, dst.out.size());
    } else if (dst.out.size() < kHighWater) {
        limit = kDialogueIn - std::min(kDialogueIn, src.in.size());
    }
    const std::size_t before = into.size();
    switch (src.read_into(into, limit)) {
        case Io::Ok: {
            const std::size_t n = into.size() - before;
            (from == Peer::Client ? client_seen_ : backend_seen_) = Clock::now();
            if (relaying) {
                if (from == Peer::Client) {
                    bytes_in_ += n;
                    remember_tail(into, n);
                } else {
                    bytes_out_ += n;
                    if (before == 0) {
                        client_flushed_ = backend_seen_;  // the client's turn to read starts now
                    }
                }
            }
            return true;
        }
        case Io::Again:
            return false;
        case Io::Eof:
            src.eof = true;
            return true;
        case Io::Error:
            src.eof = true;
            if (from == Peer::Client) {
                client_broken_ = true;
                end_detail_ = client_.error();
            } else {
                end_detail_ = "backend: " + backend_.error();
            }
            return true;
    }
    return false;
}

// The machine may leave complete backend lines unread while it holds client bytes (so its
// output does not depend on how bytes were cut): offer both sides again until neither moves.
bool Session::pump_machine() {
    bool moved = false;
    bool progressed = true;
    while (progressed && state_ == State::Dialogue && machine_ && !upgrading_) {
        progressed = feed_once(Peer::Backend) > 0;
        progressed = feed_once(Peer::Client) > 0 || progressed;
        moved = moved || progressed;
    }
    return moved;
}

// What the ends of the two byte streams mean for the session; true when its state changed.
bool Session::after_io() {
    if (state_ != State::Dialogue && state_ != State::Relaying) {
        return false;
    }
    if (upgrading_ && client_.out.empty()) {
        complete_upgrade();
        return true;
    }
    if (backend_.eof) {
        const bool said_goodbye = state_ == State::Relaying &&
                                  protocols::ends_with_goodbye(listener_.machine.protocol, tail_);
        close(said_goodbye  ? CloseReason::ClientQuit
              : client_.eof ? CloseReason::ClientClosed
                            : CloseReason::BackendClosed);
        return true;
    }
    if (!client_.eof) {
        return false;
    }
    // The client finished sending; what it sent before it went is still delivered.
    if (client_broken_ || !backend_.is_open() || backend_connecting_) {
        close(CloseReason::ClientClosed);
        return true;
    }
    if (!backend_write_shut_ && backend_.out.empty()) {
        backend_write_shut_ = true;
        (void)::shutdown(backend_.fd(), SHUT_WR);  // half-close: the backend answers, then ends
    }
    return false;
}

// --- TLS ------------------------------------------------------------------------------------

// RFC 3207 §4.2 and the 2011 Postfix/2021 "NO STARTTLS" findings: nothing the client sent after
// its STARTTLS line may be acted on. Reading stops now; what was already read is dropped; the
// reply is flushed; only then does OpenSSL get the socket, so bytes still in the kernel reach
// the handshake and fail it (fail closed).
void Session::begin_upgrade() {
    const std::size_t pipelined = client_.in.size();
    if (pipelined > 0) {
        discarded_ += pipelined;
        client_.in.clear();
        spdlog::warn(
            "client {} on {} sent {} byte(s) after STARTTLS before the handshake; "
            "discarded (command injection attempt?)",
            client_address_, listener_.name, pipelined);
    }
    upgrading_ = true;
}

void Session::complete_upgrade() {
    upgrading_ = false;
    tls::SslPtr ssl = listener_.front->new_ssl(handshake_);
    if (!ssl) {
        end_detail_ = "SSL_new: " + tls::ossl_errors();
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    client_.start_tls(std::move(ssl));
    state_ = State::Handshaking;
    handshake_started_ = Clock::now();
    arm_timer();
}

void Session::on_tls_ready() {
    state_ = State::Dialogue;
    tls_established_ = true;
    tls_version_ = SSL_get_version(client_.ssl());
    cipher_ = SSL_get_cipher_name(client_.ssl());
    client_seen_ = Clock::now();
    arm_timer();
    if (!machine_) {  // implicit TLS; a STARTTLS session keeps the machine it had
        machine_ = protocols::make_machine(listener_.machine);
    }
    feed_event(protocols::Event::TlsReady);
}

// --- the backend ----------------------------------------------------------------------------

void Session::connect_backend() {
    if (backend_.is_open() || state_ != State::Dialogue) {
        return;
    }
    const auto& address = listener_.backend_address;
    UniqueFd fd{::socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (fd.get() < 0) {
        end_detail_ = std::string("socket: ") + errno_text(errno);
        feed_event(protocols::Event::BackendFailed);
        return;
    }
    if (!backend_.open(listener_.worker->base(), std::move(fd),
                       &event_cb<Session, &Session::on_backend_io>, this)) {
        end_detail_ = backend_.error();
        backend_.close();
        feed_event(protocols::Event::BackendFailed);
        return;
    }
    if (::connect(backend_.fd(), address.get(), static_cast<socklen_t>(address.length)) != 0 &&
        errno != EINPROGRESS) {
        end_detail_ = std::string("connect: ") + errno_text(errno);
        backend_.close();
        feed_event(protocols::Event::BackendFailed);
        return;
    }
    backend_connecting_ = true;
    connect_started_ = Clock::now();
    arm_timer();
}

void Session::on_backend_connected() {
    backend_connecting_ = false;
    backend_connected_ = true;
    set_nodelay(backend_.fd());
    arm_timer();  // a plaintext client past postern's own dialogue now idles like any other
    feed_event(protocols::Event::BackendReady);
}

void Session::backend_failed(std::string detail) {
    backend_connecting_ = false;
    end_detail_ = std::move(detail);
    backend_.close();
    feed_event(protocols::Event::BackendFailed);
}

// --- the protocol machine -------------------------------------------------------------------

void Session::feed_event(protocols::Event event) {
    if (state_ != State::Dialogue || !machine_) {
        return;
    }
    actions_.clear();
    machine_->on_event(event, actions_);
    apply_actions();
}

std::size_t Session::feed_once(Peer from) {
    Stream& src = stream(from);
    if (src.in.empty() || state_ != State::Dialogue || !machine_ || upgrading_) {
        return 0;
    }
    actions_.clear();
    const std::size_t used =
        std::min(src.in.size(), machine_->on_bytes(from, src.in.view(), actions_));
    if (from == Peer::Client) {
        bytes_in_ += used;
    }
    src.in.consume(used);
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
    actions_ = {};  // a relaying session keeps nothing of the dialogue
    // What the machine left unread belongs to the other side now.
    if (!client_.in.empty()) {
        const std::size_t n = client_.in.size();
        bytes_in_ += n;
        client_.in.move_to(backend_.out);
        remember_tail(backend_.out, n);
    }
    if (!backend_.in.empty()) {
        bytes_out_ += backend_.in.size();
        if (client_.out.empty()) {
            client_flushed_ = Clock::now();
        }
        backend_.in.move_to(client_.out);
    }
}

void Session::write_to(Peer to, std::string_view bytes) {
    Stream& dst = stream(to);
    if (bytes.empty() || (to == Peer::Backend && !dst.is_open())) {
        return;
    }
    if (to == Peer::Client) {
        if (dst.out.empty()) {
            client_flushed_ = Clock::now();
        }
        bytes_out_ += bytes.size();
    }
    dst.out.append(bytes);
}

void Session::remember_tail(const ByteBuffer& sent, std::size_t length) {
    const std::size_t keep = std::min(length, protocols::kGoodbyeTail);
    const std::string_view last = sent.view().substr(sent.size() - keep);
    if (keep == protocols::kGoodbyeTail) {
        tail_.clear();
    } else if (tail_.size() + keep > protocols::kGoodbyeTail) {
        tail_.erase(0, tail_.size() + keep - protocols::kGoodbyeTail);
    }
    tail_.append(last);
}

// --- time -----------------------------------------------------------------------------------

std::chrono::milliseconds Session::quiet_limit() const {
    // A STARTTLS listener's plaintext dialogue gets its own (short) limit until TLS is up or,
    // for a plaintext client allowed through (require_tls = false), the backend took over.
    return tls_established_ || backend_connected_ ? listener_.spec.idle_timeout
                                                  : listener_.spec.plaintext_timeout;
}

// Arms the timer for the earliest deadline the current state has. Traffic only moves
// timestamps; when the timer fires early it re-arms for what is left.
void Session::arm_timer() {
    if (!timer_ || state_ == State::Closed) {
        return;
    }
    const auto now = Clock::now();
    Clock::time_point due{};
    switch (state_) {
        case State::Handshaking:
            due = handshake_started_ + listener_.spec.handshake_timeout;
            break;
        case State::Closing:
            due = close_deadline_;
            break;
        default: {
            const auto limit = quiet_limit();
            due = std::max(client_seen_, backend_seen_) + limit;
            if (!client_.out.empty()) {
                due = std::min(due, client_flushed_ + limit);
            }
            if (backend_connecting_) {
                due = std::min(due, connect_started_ + listener_.connect_timeout);
            }
            break;
        }
    }
    const auto wait = std::chrono::duration_cast<std::chrono::microseconds>(
        std::max(due - now, Clock::duration{std::chrono::milliseconds{1}}));
    const timeval tv = to_timeval(wait);
    evtimer_add(timer_.get(), &tv);
}

// --- the end --------------------------------------------------------------------------------

void Session::close_with(CloseReason reason, std::string_view reply) {
    write_to(Peer::Client, reply);
    close(reason);
}

void Session::close(CloseReason reason) {
    if (state_ == State::Closing || state_ == State::Closed) {
        return;
    }
    end_ = reason;
    const bool can_send = state_ != State::Handshaking && !client_broken_;
    state_ = State::Closing;
    machine_.reset();
    backend_.close();
    backend_connecting_ = false;
    if (!can_send || !client_.is_open() || client_.out.empty()) {
        finish();
        return;
    }
    // finish() once everything has left (progress), or when the deadline passes.
    close_deadline_ = Clock::now() + kCloseFlushTimeout;
    arm_timer();
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
    backend_.close();
    if (tls_established_ && !client_broken_) {
        client_.shutdown_tls();  // close_notify, best effort: the socket is non-blocking
    }
    client_.close();
    if (timer_) {
        evtimer_del(timer_.get());
    }
    log_end();
    listener_.worker->retire(this);
}

void Session::log_end() const {
    // The admin must act on internal errors and should notice a backend that refuses us.
    const auto level = end_ == CloseReason::Internal             ? spdlog::level::err
                       : end_ == CloseReason::BackendUnreachable ? spdlog::level::warn
                                                                 : spdlog::level::info;
    if (!spdlog::should_log(level)) {
        return;  // at log_level = "warn" a session that ends normally costs no formatting
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
    const char* cert = handshake_.cert != nullptr ? handshake_.cert->primary_name().c_str() : "-";
    const std::string sni = handshake_.sni.empty() ? "-" : sanitize(handshake_.sni);
    spdlog::log(level,
                "session end client={} listener={} protocol={} sni={} cert={} tls={} cipher={} "
                "backend={} bytes_in={} bytes_out={} duration_ms={} end={}{}{}{}",
                client_address_, listener_.name, conf::to_string(listener_.spec.protocol), sni,
                cert, tls_version_, cipher_, listener_.backend_name, bytes_in_, bytes_out_, ms,
                protocols::to_string(end_), end_detail_.empty() ? "" : " detail=\"",
                sanitize(end_detail_, 200, true), end_detail_.empty() ? "" : "\"");
}

}  // namespace postern::proxy
