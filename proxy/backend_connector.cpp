#include "proxy/backend_connector.hpp"

#include "proxy/log.hpp"
#include "proxy/proxy_protocol.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace postern::proxy {
namespace {

// A non-blocking connect() in flight, address after address: done when a socket turns
// writable (or every address failed or timed out).
class TcpAttempt final : public BackendAttempt {
public:
    TcpAttempt(std::shared_ptr<const TcpConnector> connector, const BackendRequest& request)
        : connector_(std::move(connector)),
          base_(request.base),
          callback_(request.callback),
          arg_(request.arg),
          order_(connector_->order()) {
        const conf::ProxyHeader version = connector_->send_proxy();
        own_v1_ =
            version == conf::ProxyHeader::V1 && request.client.peer.get()->sa_family == AF_UNSPEC;
        if (version != conf::ProxyHeader::None && !own_v1_) {
            preamble_ = proxy_header_for(version, request.client);
        }
    }

    // Starts the next address that can be started; false when none is left.
    bool next() {
        while (position_ < order_.size()) {
            const std::size_t index = order_[position_];
            std::string why;
            bool backend_fault = false;
            if (start(connector_->targets()[index].address, why, backend_fault)) {
                return true;
            }
            give_up(why, backend_fault);
        }
        return false;
    }

    bool on_event(short what, BackendOutcome& outcome) override {
        int err = 0;
        socklen_t length = sizeof(err);
        if ((what & EV_TIMEOUT) != 0) {
            err = ETIMEDOUT;
        } else if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &length) != 0) {
            err = errno;
        }
        if (err == 0) {
            const std::size_t index = order_[position_];
            connector_->served(index);
            set_nodelay(fd_.get());
            if (own_v1_) {
                preamble_ = own_v1_header(fd_.get());
            }
            outcome.fd = std::move(fd_);
            outcome.preamble = std::move(preamble_);
            outcome.served = connector_->targets()[index].text;
            return true;
        }
        give_up(std::string("connect: ") + errno_text(err), true);
        if (next()) {
            return false;
        }
        outcome.failure = std::move(failures_);
        return true;
    }

    [[nodiscard]] std::string take_failures() { return std::move(failures_); }

private:
    // `backend_fault`: the address refused or could not be reached, as opposed to postern
    // running short of something itself (descriptors, local ports, memory), which says nothing
    // about the address.
    bool start(const SocketAddress& address, std::string& why, bool& backend_fault) {
        event_.reset();
        fd_.reset(
            ::socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (fd_.get() < 0) {
            why = std::string("socket: ") + errno_text(errno);
            return false;
        }
        if (::connect(fd_.get(), address.get(), address.length) != 0 && errno != EINPROGRESS) {
            why = std::string("connect: ") + errno_text(errno);
            backend_fault =
                errno != EAGAIN && errno != EADDRNOTAVAIL && errno != ENOBUFS && errno != ENOMEM;
            return false;
        }
        event_.reset(event_new(base_, fd_.get(), EV_WRITE, callback_, arg_));
        const timeval timeout = to_timeval(connector_->address_timeout());
        if (!event_ || event_add(event_.get(), &timeout) != 0) {
            why = "cannot register the socket with the event loop";
            return false;
        }
        return true;
    }

    // The address at `position_` failed: noted for the log and, when it is the address's
    // fault, for the next sessions' order.
    void give_up(const std::string& why, bool backend_fault) {
        const std::size_t index = order_[position_];
        const std::string& text = connector_->targets()[index].text;
        if (backend_fault) {
            connector_->failed(index);
        }
        ++position_;
        if (position_ < order_.size()) {
            spdlog::warn("backend {}: {} failed ({}); trying {}", connector_->name(), text, why,
                         connector_->targets()[order_[position_]].text);
        }
        if (order_.size() > 1) {
            failures_.append(failures_.empty() ? "" : "; ").append(text).append(": ");
        }
        failures_.append(why);
    }

    std::shared_ptr<const TcpConnector> connector_;
    event_base* base_;
    event_callback_fn callback_;
    void* arg_;
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    std::string preamble_;
    bool own_v1_ = false;  // v1 without a client: the header names this connection's endpoints
    std::string failures_;
    UniqueFd fd_;
    EventPtr event_;  // one-shot: EV_WRITE (the connect's end; a failure is writable too) or
                      // the address's timeout
};

}  // namespace

TcpConnector::TcpConnector(std::string name, std::vector<Target> targets,
                           std::chrono::milliseconds timeout, conf::ProxyHeader send_proxy)
    : name_(std::move(name)),
      targets_(std::move(targets)),
      timeout_(timeout),
      send_proxy_(send_proxy),
      failed_at_(targets_.size()),
      failures_(targets_.size()) {}

std::chrono::milliseconds TcpConnector::timeout() const noexcept {
    return timeout_ * static_cast<long>(targets_.size()) + std::chrono::seconds{1};
}

std::vector<std::size_t> TcpConnector::order() const {
    const Clock::rep now = Clock::now().time_since_epoch().count();
    const auto demoted = [this, now](std::size_t i) {
        const Clock::rep at = failed_at_[i].load(std::memory_order_relaxed);
        return at != 0 && now - at < Clock::duration{kDemotion}.count();
    };
    std::vector<std::size_t> order(targets_.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    std::stable_partition(order.begin(), order.end(),
                          [&demoted](std::size_t i) { return !demoted(i); });
    return order;
}

void TcpConnector::failed(std::size_t index) const noexcept {
    failures_[index].fetch_add(1, std::memory_order_relaxed);  // any worker; a failure is rare
    failed_at_[index].store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
}

void TcpConnector::served(std::size_t index) const noexcept {
    failed_at_[index].store(0, std::memory_order_relaxed);
}

std::unique_ptr<BackendAttempt> TcpConnector::connect(const BackendRequest& request,
                                                      BackendOutcome& failed) const {
    auto attempt = std::make_unique<TcpAttempt>(shared_from_this(), request);
    if (!attempt->next()) {
        failed.failure = attempt->take_failures();
        return nullptr;
    }
    return attempt;
}

}  // namespace postern::proxy
