#include "proxy/deadlines.hpp"

#include <algorithm>

namespace postern::proxy {

Deadlines::Due Deadlines::next(bool client_owed) const noexcept {
    switch (phase_) {
        case Phase::Handshake:
            if (draining_ && drain_due() < phase_due_) {
                return {Timeout::DrainQuiet, drain_due()};
            }
            return {Timeout::Handshake, phase_due_};
        case Phase::Closing:
            return {Timeout::CloseFlush, phase_due_};
        case Phase::Open:
            break;
    }
    const auto limit = quiet_limit();
    Due due{Timeout::Idle, std::max(client_seen_, backend_seen_) + limit};
    if (client_owed && client_flushed_ + limit < due.at) {
        due = {Timeout::ClientNotReading, client_flushed_ + limit};
    }
    if (plaintext_due_ && *plaintext_due_ < due.at) {
        due = {Timeout::Plaintext, *plaintext_due_};
    }
    if (connect_due_ && *connect_due_ < due.at) {
        due = {Timeout::BackendConnect, *connect_due_};
    }
    if (draining_ && drain_due() < due.at) {
        due = {Timeout::DrainQuiet, drain_due()};
    }
    return due;
}

Deadlines::TimePoint Deadlines::drain_due() const noexcept {
    return std::max({client_seen_, backend_seen_, drain_looked_}) + kDrainQuiet;
}

Timeout Deadlines::expired(TimePoint now, bool client_owed) const noexcept {
    switch (phase_) {
        case Phase::Handshake:
            if (now >= phase_due_) {
                return Timeout::Handshake;
            }
            return draining_ && now >= drain_due() ? Timeout::DrainQuiet : Timeout::None;
        case Phase::Closing:
            return now >= phase_due_ ? Timeout::CloseFlush : Timeout::None;
        case Phase::Open:
            break;
    }
    if (connect_due_ && now >= *connect_due_) {
        return Timeout::BackendConnect;
    }
    if (plaintext_due_ && now >= *plaintext_due_) {
        return Timeout::Plaintext;
    }
    if (draining_ && now >= drain_due()) {
        return Timeout::DrainQuiet;
    }
    // Idle means no bytes either way: an IMAP IDLE client is silent while its backend talks.
    const auto limit = quiet_limit();
    if (client_owed && now - client_flushed_ >= limit) {
        return Timeout::ClientNotReading;
    }
    if (now - std::max(client_seen_, backend_seen_) >= limit) {
        return Timeout::Idle;
    }
    return Timeout::None;
}

}  // namespace postern::proxy
