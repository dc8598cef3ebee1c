#include "proxy/stderr_log.hpp"

#include "proxy/log.hpp"

#include <spdlog/spdlog.h>

namespace postern::proxy {

void StderrLog::line(pid_t pid, std::string_view text, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    if (now - window_ >= std::chrono::seconds{1}) {
        report_suppressed();
        window_ = now;
        logged_ = 0;
    }
    if (logged_ >= per_second_) {
        ++suppressed_;
        ++suppressed_total_;
        return;
    }
    ++logged_;
    spdlog::info("{}[{}]: {}", backend_, pid, sanitize(text, kMaxLine, true));
}

void StderrLog::flush() {
    const std::lock_guard lock(mutex_);
    report_suppressed();
}

std::uint64_t StderrLog::suppressed_total() const {
    const std::lock_guard lock(mutex_);
    return suppressed_total_;
}

void StderrLog::report_suppressed() {
    if (suppressed_ == 0) {
        return;
    }
    spdlog::warn("{}: suppressed {} stderr line(s) of its programs (more than {} a second)",
                 backend_, suppressed_, per_second_);
    suppressed_ = 0;
}

}  // namespace postern::proxy
