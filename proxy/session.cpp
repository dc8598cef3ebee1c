#include "proxy/session.hpp"

#include "protocols/replies.hpp"
#include "proxy/log.hpp"
#include "proxy/proxy_protocol.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace postern::proxy {
namespace {

using protocols::CloseReason;
using protocols::Peer;

// One event moves at most this many rounds of reads and writes before the session yields to
// the others on the loop (and continues on its next turn).
constexpr int kRounds = 8;

Deadlines::Limits limits(const conf::ListenerSpec& spec) {
    return {.handshake = spec.handshake_timeout,
            .idle = spec.idle_timeout,
            .plaintext = spec.plaintext_timeout};
}

}  // namespace

Session::Session(ListenerContext& listener, UniqueFd fd, std::string client_address)
    : listener_(listener),
      client_address_(std::move(client_address)),
      client_(listener.worker->buffers()),
      backend_(listener.worker->buffers()),
      deadlines_(limits(listener.spec), started_),
      relay_(client_, backend_, deadlines_, listener.machine.max_backend_line) {
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
    if (listener_.spec.accept_proxy) {
        phase_ = Phase::ProxyHeader;
        deadlines_.handshake(Clock::now());  // the header counts against handshake_timeout
        arm_timer();
    } else {
        begin();
    }
    if (draining_) {
        begin_drain();
    }
    progress();
}

// The client's own dialogue: TLS first (implicit), or postern's plaintext greeting (STARTTLS).
void Session::begin() {
    handshake_.store = listener_.worker->certs();
    handshake_.strict_sni = listener_.strict_sni;
    if (listener_.spec.tls == conf::TlsMode::Implicit) {
        complete_upgrade();  // straight to the handshake
        return;
    }
    phase_ = Phase::Dialogue;
    deadlines_.plaintext(Clock::now());
    arm_timer();
    if (listener_.backend_ehlo != nullptr) {
        protocols::MachineSettings settings = listener_.machine;
        settings.smtp_extensions = listener_.backend_ehlo->extensions();
        machine_ = protocols::make_machine(settings);
    } else {
        machine_ = protocols::make_machine(listener_.machine);
    }
    feed_event(protocols::Event::ClientConnected);
}

// --- the event entry points ----------------------------------------------------------------

void Session::on_client_io(short what) {
    client_.on_ready(what);
    progress();
}

void Session::on_backend_io(short what) {
    backend_.on_ready(what);
    progress();
}

void Session::on_timer(short /*what*/) {
    if (phase_ == Phase::Closed) {
        return;
    }
    const Timeout timeout = deadlines_.expired(Clock::now(), !client_.out.empty());
    switch (timeout) {
        case Timeout::None:
            break;
        case Timeout::CloseFlush:
            finish();  // the client stopped reading what it was owed
            return;
        case Timeout::Handshake:
            if (phase_ == Phase::Handshake) {
                listener_.counters.handshake(HandshakeResult::Timeout,
                                             tls_version_index(SSL_version(client_.ssl())));
            }
            end_detail_ = phase_ == Phase::ProxyHeader ? "no complete PROXY header in time"
                                                       : "no complete TLS handshake in time";
            end_ = CloseReason::Timeout;
            finish();
            return;
        case Timeout::DrainQuiet:
            if (drain_quiet()) {
                return;
            }
            break;
        case Timeout::BackendConnect:
            backend_failed("backend connect timed out");
            progress();
            return;
        case Timeout::Idle:
        case Timeout::Plaintext:
        case Timeout::ClientNotReading:
            end_detail_ = timeout == Timeout::ClientNotReading ? "client not reading"
                          : timeout == Timeout::Plaintext
                              ? "no TLS within plaintext_timeout of connecting"
                              : "idle";
            if (!client_.out.empty() && !client_.can_write()) {
                end_ = CloseReason::Timeout;  // not reading: no reply would reach it in time
                finish();
                return;
            }
            close_with(CloseReason::Timeout,
                       protocols::replies::timeout_reply(listener_.machine.protocol,
                                                         listener_.machine.hostname));
            progress();
            return;
    }
    arm_timer();
}

// --- moving bytes ---------------------------------------------------------------------------

void Session::progress() {
    for (int round = 0; round < kRounds; ++round) {
        switch (phase_) {
            case Phase::Closed:
                return;
            case Phase::ProxyHeader:
                if (!step_proxy_header()) {
                    return;
                }
                continue;
            case Phase::Handshake:
                if (!step_handshake()) {
                    return;
                }
                continue;
            case Phase::Closing:
                flush(Peer::Client);
                if (phase_ == Phase::Closing && (client_.out.empty() || client_broken_)) {
                    finish();
                }
                return;
            default:
                break;
        }
        bool moved = flush(Peer::Client);
        moved = flush(Peer::Backend) || moved;
        moved = read(Peer::Backend) || moved;
        moved = read(Peer::Client) || moved;
        if (phase_ == Phase::Dialogue) {
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
        listener_.counters.handshake(HandshakeResult::Ok,
                                     tls_version_index(SSL_version(client_.ssl())));
        if (SSL_session_reused(client_.ssl()) == 1) {
            listener_.counters.resumed_handshakes.add();
        }
        // By name only when the client's name chose it: labels never come from client text.
        const bool by_name = handshake_.cert != nullptr && !handshake_.server_name.empty() &&
                             !handshake_.unknown_name;
        listener_.counters.served.add(by_name ? std::string_view{handshake_.cert->primary_name()}
                                              : std::string_view{"default"});
        on_tls_ready();
        // Closing already: the backend failed at once (a program that cannot be started) and
        // the machine's error reply waits; the next round flushes it, as no edge may come.
        return phase_ == Phase::Dialogue || phase_ == Phase::Closing;
    }
    if (result == Io::Again) {
        return false;
    }
    listener_.counters.handshake(HandshakeResult::Failed,
                                 tls_version_index(SSL_version(client_.ssl())));
    if (handshake_.unknown_name && handshake_.strict_sni) {
        listener_.counters.sni_rejected.add();
    }
    end_ = CloseReason::TlsFailed;
    end_detail_ = !handshake_.refusal.empty() ? handshake_.refusal  // strict_sni, ALPN
                  : result == Io::Eof         ? "client closed during the handshake"
                                              : client_.error();
    finish();
    return false;
}

bool Session::flush(Peer to) {
    switch (relay_.flush(to)) {
        case Io::Ok:
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
    if (from == Peer::Client && phase_ == Phase::Upgrading) {
        return false;
    }
    switch (relay_.read(from, phase_ == Phase::Relaying, in_dialogue() && link_ == Link::None)) {
        case Io::Again:
            return false;
        case Io::Ok:
            backend_heard_ = backend_heard_ || from == Peer::Backend;
            return true;
        case Io::Eof:
            return true;
        case Io::Error:
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

// What the ends of the two byte streams mean for the session; true when its phase changed.
bool Session::after_io() {
    if (!in_dialogue() && phase_ != Phase::Relaying) {
        return false;
    }
    if (phase_ == Phase::Upgrading && client_.out.empty()) {
        complete_upgrade();
        return true;
    }
    if (backend_.eof && phase_ == Phase::Dialogue && !backend_heard_ && link_ == Link::Open) {
        // Gone before its greeting (an exec'd program that could not start its work, a server
        // that accepts and closes): the client is owed the protocol's error, as for a backend
        // that cannot be reached.
        backend_failed(end_detail_.empty() ? "backend closed before its greeting"
                                           : std::move(end_detail_));
        return true;
    }
    if (backend_.eof) {
        const bool said_goodbye =
            phase_ == Phase::Relaying && relay_.client_said_goodbye(listener_.machine.protocol);
        close(said_goodbye  ? CloseReason::ClientQuit
              : client_.eof ? CloseReason::ClientClosed
                            : CloseReason::BackendClosed);
        return true;
    }
    if (!client_.eof) {
        return false;
    }
    // The client finished sending; what it sent before it went is still delivered.
    if (client_broken_ || !backend_.is_open()) {
        close(CloseReason::ClientClosed);
        return true;
    }
    if (link_ == Link::Open && backend_.out.empty()) {
        link_ = Link::HalfClosed;
        (void)::shutdown(backend_.fd(), SHUT_WR);  // half-close: the backend answers, then ends
    }
    return false;
}

// --- TLS ------------------------------------------------------------------------------------

void Session::complete_upgrade() {
    tls::SslPtr ssl = listener_.front->new_ssl(handshake_);
    if (!ssl) {
        end_detail_ = "SSL_new: " + tls::ossl_errors();
        end_ = CloseReason::Internal;
        finish();
        return;
    }
    client_.start_tls(std::move(ssl));
    phase_ = Phase::Handshake;
    deadlines_.handshake(Clock::now());
    arm_timer();
}

void Session::on_tls_ready() {
    phase_ = Phase::Dialogue;
    tls_version_ = SSL_get_version(client_.ssl());
    cipher_ = SSL_get_cipher_name(client_.ssl());
    deadlines_.tls_ready(Clock::now());
    arm_timer();
    // Scanners, certificate monitors and handshake cyclers close at once: when the client's
    // close (close_notify or FIN) is already here and it sent nothing, no backend is reached
    // (it would start a login process for nobody).
    (void)read(Peer::Client);
    if (client_.eof && client_.in.empty()) {
        end_detail_ = "closed right after the handshake";
        close(CloseReason::HandshakeOnly);
        return;
    }
    if (!machine_) {  // implicit TLS; a STARTTLS session keeps the machine it had
        machine_ = protocols::make_machine(listener_.machine);
    }
    feed_event(protocols::Event::TlsReady);
}

// --- time -----------------------------------------------------------------------------------

// Arms the timer for the earliest deadline the current phase has. Traffic only moves
// timestamps; when the timer fires early it re-arms for what is left.
void Session::arm_timer() {
    if (!timer_ || phase_ == Phase::Closed) {
        return;
    }
    const auto due = deadlines_.next(!client_.out.empty()).at;
    const auto wait = std::chrono::duration_cast<std::chrono::microseconds>(
        std::max(due - Clock::now(), Clock::duration{std::chrono::milliseconds{1}}));
    const timeval tv = to_timeval(wait);
    evtimer_add(timer_.get(), &tv);
}

// --- the end --------------------------------------------------------------------------------

void Session::close_with(CloseReason reason, std::string_view reply) {
    relay_.send(Peer::Client, reply);
    close(reason);
}

void Session::close(CloseReason reason) {
    if (phase_ == Phase::Closing || phase_ == Phase::Closed) {
        return;
    }
    end_ = reason;
    if (reason == CloseReason::ForwardingRefused && end_detail_.empty()) {
        end_detail_ =
            "the backend refused the client's address (XCLIENT/ID): allow postern's "
            "address in Postfix smtpd_authorized_xclient_hosts or Dovecot "
            "login_trusted_networks (POP3: its greeting must offer [XCLIENT])";
    }
    const bool can_send = phase_ != Phase::Handshake && !client_broken_;
    phase_ = Phase::Closing;
    machine_.reset();
    drop_backend();
    if (!can_send || !client_.is_open() || client_.out.empty()) {
        finish();
        return;
    }
    // finish() once everything has left (progress), or when the deadline passes.
    deadlines_.closing(Clock::now());
    arm_timer();
}

// The socket first, then the program behind it, if any: it sees EOF before its SIGTERM.
void Session::drop_backend() {
    attempt_.reset();
    backend_.close();
    child_.reset();
    link_ = Link::None;
}

void Session::fail_internal(const char* what) {
    spdlog::error("internal error in session client={}: {}", client_address_, what);
    if (phase_ == Phase::Closed) {
        return;
    }
    end_detail_ = what;
    end_ = CloseReason::Internal;
    finish();
}

void Session::finish() {
    if (phase_ == Phase::Closed) {
        return;
    }
    phase_ = Phase::Closed;
    machine_.reset();
    drop_backend();
    if (tls_established() && !client_broken_) {
        client_.shutdown_tls();  // close_notify, best effort: the socket is non-blocking
    }
    client_.close();
    if (timer_) {
        evtimer_del(timer_.get());
    }
    admission_.release();
    listener_.counters.session_ended(end_);
    log_end();
    listener_.worker->retire(this);
}

}  // namespace postern::proxy
