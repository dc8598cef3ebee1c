#pragma once
// What a listener does when accept() fails. libevent's evconnlistener passes every error but the
// retriable ones (EAGAIN, EINTR, ECONNABORTED) to the error callback and leaves the listener
// enabled; the queue still holds the connection, so the socket stays readable and accepting again
// at once would spin for as long as the shortage lasts. So, like nginx (ngx_event_accept turns
// accept events off for accept_mutex_delay on EMFILE/ENFILE), the listener is disabled and
// re-enabled by a timer: briefly for a shortage of descriptors or kernel memory, which ends as
// soon as sessions close, so that the end of a flood is noticed within a fraction of a second;
// for a second on any other error. The warning is rate-limited per listener (a flood would
// otherwise log ten lines a second) and names the limit that was hit.

#include "proxy/event.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace postern::proxy {

class AcceptPause {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kShortage{100};  // EMFILE, ENFILE, ENOBUFS, ENOMEM
    static constexpr std::chrono::milliseconds kOtherError{1000};
    static constexpr std::chrono::seconds kWarnEvery{10};

    // `listener` (named `name` in the log) must outlive this object.
    AcceptPause(event_base* base, evconnlistener* listener, std::string name);

    // accept() failed with `err`: stops accepting for pause_for(err); warns unless a warning
    // was logged less than kWarnEvery ago (the next one counts the pauses in between).
    void on_error(int err, Clock::time_point now = Clock::now());
    // Drops a pending re-enable (the listener is going away).
    void cancel() noexcept;

    [[nodiscard]] static std::chrono::milliseconds pause_for(int err) noexcept;
    // The error's text, with the limit behind it where there is one.
    [[nodiscard]] static std::string describe(int err);

    // libevent entry points (proxy/trampoline.hpp)
    void on_timer();
    void fail_internal(const char* what) const;

private:
    evconnlistener* listener_;
    std::string name_;
    EventPtr timer_;
    std::optional<Clock::time_point> last_warning_;
    std::uint64_t unlogged_ = 0;  // pauses since the last warning
};

}  // namespace postern::proxy
