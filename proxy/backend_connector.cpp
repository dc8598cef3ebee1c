#include "proxy/backend_connector.hpp"

#include "proxy/log.hpp"

#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace postern::proxy {
namespace {

// A non-blocking connect() in flight: done when the socket turns writable (or fails).
class TcpAttempt final : public BackendAttempt {
public:
    TcpAttempt(UniqueFd fd, EventPtr event) noexcept
        : fd_(std::move(fd)), event_(std::move(event)) {}

    bool on_event(short /*what*/, BackendOutcome& outcome) override {
        int err = 0;
        socklen_t length = sizeof(err);
        if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &length) != 0) {
            err = errno;
        }
        if (err != 0) {
            outcome.failure = std::string("backend connect: ") + errno_text(err);
            return true;
        }
        set_nodelay(fd_.get());
        outcome.fd = std::move(fd_);
        return true;
    }

private:
    UniqueFd fd_;
    EventPtr event_;  // one-shot: EV_WRITE, the connect's end (a failure is writable too)
};

}  // namespace

std::unique_ptr<BackendAttempt> TcpConnector::connect(const BackendRequest& request,
                                                      BackendOutcome& failed) const {
    UniqueFd fd{::socket(address_.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (fd.get() < 0) {
        failed.failure = std::string("socket: ") + errno_text(errno);
        return nullptr;
    }
    if (::connect(fd.get(), address_.get(), address_.length) != 0 && errno != EINPROGRESS) {
        failed.failure = std::string("connect: ") + errno_text(errno);
        return nullptr;
    }
    EventPtr event{event_new(request.base, fd.get(), EV_WRITE, request.callback, request.arg)};
    if (!event || event_add(event.get(), nullptr) != 0) {
        failed.failure = "cannot register the socket with the event loop";
        return nullptr;
    }
    return std::make_unique<TcpAttempt>(std::move(fd), std::move(event));
}

}  // namespace postern::proxy
