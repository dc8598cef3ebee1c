#pragma once
// Owning handles for the C objects the benchmark tools use (OpenSSL, libevent, file
// descriptors). The tools are built on their own as well as inside postern's tree, so they keep
// their own small copy of the pattern in tls/ossl.hpp and proxy/event.hpp rather than including
// postern's headers.

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include <memory>
#include <unistd.h>
#include <utility>

namespace postern::bench {

template <auto FreeFn>
struct CFree {
    template <class T>
    void operator()(T* p) const noexcept {
        FreeFn(p);
    }
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, CFree<&SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, CFree<&SSL_free>>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, CFree<&SSL_SESSION_free>>;
using EventBasePtr = std::unique_ptr<event_base, CFree<&event_base_free>>;
using EventPtr = std::unique_ptr<event, CFree<&event_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, CFree<&evconnlistener_free>>;

// A file descriptor closed on destruction; release() hands it to whoever takes ownership.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset() noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_ = -1;
};

}  // namespace postern::bench
