#include "proxy/accept_pause.hpp"

#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <sys/resource.h>

namespace postern::proxy {

AcceptPause::AcceptPause(event_base* base, evconnlistener* listener, std::string name)
    : listener_(listener), name_(std::move(name)) {
    timer_.reset(event_new(base, -1, 0, &event_cb<AcceptPause, &AcceptPause::on_timer>, this));
}

std::chrono::milliseconds AcceptPause::pause_for(int err) noexcept {
    switch (err) {
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            return kShortage;
        default:
            return kOtherError;
    }
}

std::string AcceptPause::describe(int err) {
    std::string text = errno_text(err);
    if (err == EMFILE) {
        rlimit limit{};
        if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
            text += " (postern's open-files limit, ulimit -n, is " +
                    std::to_string(limit.rlim_cur) + ")";
        }
    } else if (err == ENFILE) {
        text += " (the system's limit, sysctl fs.file-max)";
    }
    return text;
}

void AcceptPause::on_error(int err, Clock::time_point now) {
    const std::chrono::milliseconds pause = pause_for(err);
    evconnlistener_disable(listener_);
    const timeval delay = to_timeval(pause);
    evtimer_add(timer_.get(), &delay);
    if (last_warning_ && now - *last_warning_ < kWarnEvery) {
        ++unlogged_;
        return;
    }
    std::string more;
    if (unlogged_ > 0) {
        more = "; " + std::to_string(unlogged_) + " more pause(s) since the last warning";
    }
    spdlog::warn("accept on {} failed: {}; pausing this listener for {} ms{}", name_, describe(err),
                 pause.count(), more);
    last_warning_ = now;
    unlogged_ = 0;
}

void AcceptPause::cancel() noexcept {
    evtimer_del(timer_.get());
}

// NOLINTNEXTLINE(readability-make-member-function-const): a trampoline target, non-const
void AcceptPause::on_timer() {
    evconnlistener_enable(listener_);
}

void AcceptPause::fail_internal(const char* what) const {
    spdlog::error("accept on {}: {}", name_, what);
}

}  // namespace postern::proxy
