// The Session while postern drains (proxy/drain.hpp): the end of sessions that have not begun
// their dialogue, the quiet moment between commands the session's timer looks for, and the
// forced end at shutdown_timeout or on a second signal. The phases themselves are in
// proxy/session.cpp.

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
    switch (phase_) {
        case Phase::ProxyHeader:
        case Phase::Handshake:
        case Phase::Upgrading:
            // Nothing can be said before TLS is up (or while its go-ahead is on its way); the
            // client's retry reaches whoever listens now.
            end_ = CloseReason::Shutdown;
            end_detail_ = "stopping before the dialogue began";
            finish();
            return;
        case Phase::Closing:
        case Phase::Closed:
            return;
        case Phase::Dialogue:
        case Phase::Relaying:
            break;
    }
    deadlines_.draining();
    arm_timer();
    feed_event(protocols::Event::Drain);
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
    return phase_ == Phase::Dialogue && link_ == Link::Open && machine_ &&
           machine_->between_commands();
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
