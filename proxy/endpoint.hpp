#pragma once
// Turning configured "host:port" endpoints into socket addresses, once, at startup (so no
// session ever blocks on a resolver), and socket addresses back into log text.

#include "conf/config.hpp"
#include "tls/ossl.hpp"

#include <cstdint>
#include <memory>
#include <netdb.h>
#include <string>
#include <sys/socket.h>

namespace postern::proxy {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    [[nodiscard]] const sockaddr* get() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage);
    }
};

using AddrInfoPtr = std::unique_ptr<addrinfo, tls::CFree<&freeaddrinfo>>;

// Every address the resolver gives for a stream connection to the endpoint, in its order; null
// with `error` set to the resolver's reason (gai_strerror) when there is none.
[[nodiscard]] AddrInfoPtr lookup(const conf::Endpoint& endpoint, std::string& error);

// First address the resolver gives for the endpoint; false with `error` set otherwise.
[[nodiscard]] bool resolve(const conf::Endpoint& endpoint, SocketAddress& out, std::string& error);

// TCP_NODELAY, best effort: mail dialogues are small request/response lines, and a failure
// only costs latency.
void set_nodelay(int fd) noexcept;

// An address as text and its port. An IPv4-mapped IPv6 address (an IPv4 client of a
// dual-stack listener) is given as the IPv4 address it carries, as backends log it. Empty host
// for anything but AF_INET and AF_INET6.
struct HostPort {
    std::string host;  // "203.0.113.7", "2001:db8::1" (no brackets)
    std::uint16_t port = 0;
};
[[nodiscard]] HostPort host_port(const sockaddr* address);

// "127.0.0.1:993", "[::1]:993"; "unknown" for other families.
[[nodiscard]] std::string to_string(const sockaddr* address);

// The machine's fully qualified name (the resolver's canonical name for gethostname()), or the
// plain host name when the resolver knows no better; "localhost" if even that fails.
[[nodiscard]] std::string machine_fqdn();

}  // namespace postern::proxy
