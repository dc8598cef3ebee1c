// The Session while postern drains (proxy/drain.hpp): the quiet moment between commands the
// session's timer looks for, and the forced end at shutdown_timeout or on a second signal. The
// phases themselves are in proxy/session.cpp.

#include "protocols/replies.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace postern::proxy {

using protocols::CloseReason;
using protocols::Peer;

void Session::drain() {
    if (draining_ || phase_ == Phase::Closed) {
        return;
    }
    draining_ = true;
    if (timer_) {  // started; otherwise start() calls begin_drain()
        begin_drain();
        progress();  // the machine may have answered: no edge would flush it
    }
}

void Session::begin_drain() {
    if (phase_ == Phase::Closing || phase_ == Phase::Closed) {
        return;
    }
    // Every phase goes on as usual: a handshake, a backend on its way and the client's next
    // command are an exchange under way (a client that connected just before a replacement took
    // over must be served). The session's timer looks for a quiet moment between commands
    // (Timeout::DrainQuiet, between_commands()); shutdown_timeout ends the rest (stop()).
    deadlines_.draining();
    arm_timer();
}

// Nothing under way either way: no bytes unread or unwritten, and the machine (if it still
// follows the dialogue) between commands. A relaying session (IMAP and POP3 after login) is
// followed no more: its quiet is the test.
bool Session::between_commands() const noexcept {
    if (!client_.in.empty() || !client_.out.empty() || !backend_.in.empty() ||
        !backend_.out.empty()) {
        return false;
    }
    if (phase_ == Phase::Relaying) {
        return true;
    }
    // Link::None: postern's own plaintext dialogue on a STARTTLS listener.
    return phase_ == Phase::Dialogue && (link_ == Link::Open || link_ == Link::None) && machine_ &&
           machine_->between_commands();
}

bool Session::drain_quiet() {
    if (phase_ == Phase::ProxyHeader || phase_ == Phase::Handshake) {
        // A handshake takes milliseconds; one silent for 2 s is not coming, and nothing can be
        // said to it before TLS is up.
        end_ = CloseReason::Shutdown;
        end_detail_ = "quiet before the dialogue began";
        finish();
        return true;
    }
    if (between_commands()) {
        close_with(CloseReason::Drained,
                   protocols::replies::drain_goodbye(listener_.machine.protocol,
                                                     listener_.machine.hostname));
        progress();
        return true;
    }
    deadlines_.drain_busy(Clock::now());
    return false;
}

void Session::stop() {
    if (phase_ == Phase::Closed) {
        return;
    }
    if (phase_ == Phase::Dialogue || phase_ == Phase::Relaying) {
        end_ = CloseReason::Shutdown;
        if (!client_broken_) {
            relay_.send(Peer::Client, protocols::replies::drain_goodbye(
                                          listener_.machine.protocol, listener_.machine.hostname));
        }
    } else if (phase_ != Phase::Closing) {
        end_ = CloseReason::Shutdown;
    }
    if (!client_broken_ && phase_ != Phase::Handshake && phase_ != Phase::ProxyHeader) {
        (void)relay_.flush(Peer::Client);  // once, best effort: the loops have stopped
    }
    finish();
}

}  // namespace postern::proxy
