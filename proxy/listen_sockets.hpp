#pragma once
// The listening sockets of the whole process, made in run() before any worker exists: either
// taken over from whoever started postern (a service manager's socket activation, or the
// postern process being replaced: both pass them as LISTEN_FDS, proxy/inherited_sockets.hpp) or
// bound here. Taking a socket over rather than binding a new one keeps its accept queue: the
// kernel drops the queue of a listening socket that closes, so a restart that binds afresh
// refuses or resets the connections that arrived in between.
//
// Each worker gets its own sockets for every listener: one per worker from a fresh bind
// (SO_REUSEPORT with several workers), or the inherited ones shared out so that every socket has
// a worker and every worker a socket (a duplicate of one when there are fewer sockets than
// workers: a socket with two owners simply has two loops accepting from one queue).

#include "conf/config.hpp"
#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace postern::proxy {

// A listening socket someone else made, and the address it is bound to.
struct InheritedSocket {
    UniqueFd fd;
    SocketAddress address;
};

class ListenSockets {
public:
    // Gives every listener of `config` its sockets for `workers` workers, from `inherited` where
    // an inherited socket's address equals the listener's, bound otherwise. Inherited sockets
    // that no listener wants are closed, with a warning. False with `error` naming the listener
    // when one cannot be bound.
    [[nodiscard]] bool open(const conf::Config& config, unsigned workers,
                            std::vector<InheritedSocket> inherited, std::string& error);

    // The sockets worker `worker` accepts on for listener `listener`; each is its own
    // descriptor, so the caller owns what it takes (once).
    [[nodiscard]] std::vector<UniqueFd> take(std::size_t listener, unsigned worker);

    // Every distinct socket of every listener with its configured address, for handing them to
    // a process that replaces this one. Valid while the workers' listeners are open.
    struct Shared {
        int fd = -1;
        std::string name;  // the listen address as configured, ':' as '_' (LISTEN_FDNAMES)
    };
    [[nodiscard]] const std::vector<Shared>& shared() const noexcept { return shared_; }

    // How many of the listeners' sockets were inherited (for the startup log).
    [[nodiscard]] std::size_t inherited_count() const noexcept { return inherited_count_; }

private:
    // [listener][worker] -> sockets
    std::vector<std::vector<std::vector<UniqueFd>>> sockets_;
    std::vector<Shared> shared_;
    std::size_t inherited_count_ = 0;
};

// A bound, listening, non-blocking, close-on-exec TCP socket; SO_REUSEPORT when `shared_port`.
[[nodiscard]] UniqueFd bind_listener(const SocketAddress& address, bool shared_port,
                                     std::string& error);

// Whether two socket addresses name the same family, address and port.
[[nodiscard]] bool same_address(const sockaddr* a, const sockaddr* b) noexcept;

}  // namespace postern::proxy
