#include "proxy/listen_sockets.hpp"

#include "proxy/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace postern::proxy {
namespace {

// Long enough to hold the connections that arrive while a replacement process starts or a
// burst outruns the loop; the kernel caps it at net.core.somaxconn.
constexpr int kBacklog = 1024;

bool set_flag(int fd, int level, int name) {
    const int on = 1;
    return ::setsockopt(fd, level, name, &on, sizeof(on)) == 0;
}

}  // namespace

bool same_address(const sockaddr* a, const sockaddr* b) noexcept {
    if (a->sa_family != b->sa_family) {
        return false;
    }
    if (a->sa_family == AF_INET) {
        const auto* x = reinterpret_cast<const sockaddr_in*>(a);
        const auto* y = reinterpret_cast<const sockaddr_in*>(b);
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const auto* x = reinterpret_cast<const sockaddr_in6*>(a);
        const auto* y = reinterpret_cast<const sockaddr_in6*>(b);
        return x->sin6_port == y->sin6_port &&
               std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
    }
    return false;
}

UniqueFd bind_listener(const SocketAddress& address, bool shared_port, std::string& error) {
    UniqueFd fd{::socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (fd.get() < 0) {
        error = errno_text(errno);
        return {};
    }
    // As evconnlistener_new_bind did: reusable at once after a restart, keepalive inherited by
    // every accepted socket.
    if (!set_flag(fd.get(), SOL_SOCKET, SO_REUSEADDR) ||
        !set_flag(fd.get(), SOL_SOCKET, SO_KEEPALIVE) ||
        (shared_port && !set_flag(fd.get(), SOL_SOCKET, SO_REUSEPORT))) {
        error = errno_text(errno);
        return {};
    }
    if (::bind(fd.get(), address.get(), address.length) != 0 || ::listen(fd.get(), kBacklog) != 0) {
        error = errno_text(errno);
        return {};
    }
    return fd;
}

bool ListenSockets::open(const conf::Config& config, unsigned workers,
                         std::vector<InheritedSocket> inherited, std::string& error) {
    if (workers == 0) {
        error = "no workers";
        return false;
    }
    sockets_.clear();
    sockets_.resize(config.listeners.size());
    shared_.clear();
    inherited_count_ = 0;
    for (std::size_t l = 0; l < config.listeners.size(); ++l) {
        const std::string name = config.listeners[l].listen.to_string();
        SocketAddress address;
        if (!resolve(config.listeners[l].listen, address, error)) {
            error.insert(0, "listener " + name + ": ");
            return false;
        }
        std::vector<UniqueFd> own;
        for (InheritedSocket& socket : inherited) {
            if (socket.fd.get() >= 0 && same_address(socket.address.get(), address.get())) {
                own.push_back(std::move(socket.fd));
            }
        }
        inherited_count_ += own.size();
        if (own.empty()) {
            for (unsigned w = 0; w < workers; ++w) {
                own.push_back(bind_listener(address, workers > 1, error));
                if (own.back().get() < 0) {
                    error.insert(0, "cannot listen on " + name + ": ");
                    return false;
                }
            }
        }
        // sd_listen_fds_with_names() splits LISTEN_FDNAMES at ':', so a name holds none.
        std::string fd_name = name;
        std::replace(fd_name.begin(), fd_name.end(), ':', '_');
        for (const UniqueFd& fd : own) {
            shared_.push_back({fd.get(), fd_name});
        }
        // Socket j goes to worker j mod workers; a worker left without one accepts on a
        // duplicate of socket w mod count.
        auto& per_worker = sockets_[l];
        per_worker.resize(workers);
        const std::size_t count = own.size();
        if (count == 0) {  // cannot happen (inherited, or one bound per worker): no w % 0 below
            error = "listener " + name + " has no socket";
            return false;
        }
        for (std::size_t w = count; w < workers; ++w) {
            per_worker[w].emplace_back(::fcntl(own[w % count].get(), F_DUPFD_CLOEXEC, 3));
            if (per_worker[w].back().get() < 0) {
                error = "cannot share the socket of " + name + ": " + errno_text(errno);
                return false;
            }
        }
        for (std::size_t j = 0; j < count; ++j) {
            per_worker[j % workers].push_back(std::move(own[j]));
        }
    }
    for (const InheritedSocket& socket : inherited) {
        if (socket.fd.get() >= 0) {
            spdlog::warn("inherited listening socket {} matches no listener; closed",
                         to_string(socket.address.get()));
        }
    }
    return true;
}

std::vector<UniqueFd> ListenSockets::take(std::size_t listener, unsigned worker) {
    return std::move(sockets_.at(listener).at(worker));
}

}  // namespace postern::proxy
