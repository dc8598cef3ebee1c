#pragma once
// RAII owners for libevent handles and file descriptors. Every libevent object in postern lives
// in one of these; where a C API takes ownership (BEV_OPT_CLOSE_ON_FREE), the code says so.

#include "tls/ossl.hpp"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sys/time.h>
#include <unistd.h>
#include <utility>

namespace postern::proxy {

using tls::CFree;
using EventBasePtr = std::unique_ptr<event_base, CFree<&event_base_free>>;
using BevPtr = std::unique_ptr<bufferevent, CFree<&bufferevent_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, CFree<&evconnlistener_free>>;
using EventPtr = std::unique_ptr<event, CFree<&event_free>>;

// A duration as the timeval libevent and setsockopt take; negative durations become zero.
[[nodiscard]] inline timeval to_timeval(std::chrono::microseconds d) noexcept {
    const auto us = std::max<std::chrono::microseconds::rep>(d.count(), 0);
    return timeval{.tv_sec = static_cast<time_t>(us / 1000000),
                   .tv_usec = static_cast<suseconds_t>(us % 1000000)};
}

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset(std::exchange(other.fd_, -1));
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace postern::proxy
