#include "proxy/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

namespace postern::proxy {

namespace header = protocols::proxy_header;

header::Address header_address(const SocketAddress& address) {
    header::Address out;
    const sockaddr* sa = address.get();
    if (sa->sa_family == AF_INET && address.length >= sizeof(sockaddr_in)) {
        sockaddr_in in{};
        std::memcpy(&in, &address.storage, sizeof(in));
        out.family = 4;
        std::memcpy(out.bytes.data(), &in.sin_addr, 4);
        out.port = ntohs(in.sin_port);
    } else if (sa->sa_family == AF_INET6 && address.length >= sizeof(sockaddr_in6)) {
        sockaddr_in6 in6{};
        std::memcpy(&in6, &address.storage, sizeof(in6));
        out.port = ntohs(in6.sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
            out.family = 4;
            std::memcpy(out.bytes.data(), &in6.sin6_addr.s6_addr[12], 4);
        } else {
            out.family = 6;
            std::memcpy(out.bytes.data(), &in6.sin6_addr, 16);
        }
    }
    return out;
}

SocketAddress socket_address(const header::Address& address) {
    SocketAddress out;
    if (address.family == 4) {
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_port = htons(address.port);
        std::memcpy(&in.sin_addr, address.bytes.data(), 4);
        std::memcpy(&out.storage, &in, sizeof(in));
        out.length = sizeof(in);
    } else if (address.family == 6) {
        sockaddr_in6 in6{};
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(address.port);
        std::memcpy(&in6.sin6_addr, address.bytes.data(), 16);
        std::memcpy(&out.storage, &in6, sizeof(in6));
        out.length = sizeof(in6);
    }
    return out;
}

bool trusted_proxy(const std::vector<conf::Network>& networks, const sockaddr* peer) {
    SocketAddress address;
    address.length = peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    std::memcpy(&address.storage, peer, address.length);
    const header::Address a = header_address(address);
    return a.family != 0 &&
           std::any_of(networks.begin(), networks.end(), [&a](const conf::Network& n) {
               return n.contains(a.family, a.bytes.data());
           });
}

bool peer_shut_down(int fd) noexcept {
    pollfd p{.fd = fd, .events = POLLRDHUP, .revents = 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

std::string proxy_header_for(conf::ProxyHeader version, const ClientInfo& client) {
    header::Header h;
    h.source = header_address(client.peer);
    h.destination = header_address(client.local);
    h.local = h.source.family == 0 || h.destination.family == 0;
    h.authority = std::string{client.sni};
    if (client.tls_version != nullptr && *client.tls_version != '\0') {
        h.tls = header::TlsInfo{client.tls_version, client.cipher != nullptr ? client.cipher : ""};
    }
    return version == conf::ProxyHeader::V1 ? header::build_v1(h) : header::build_v2(h);
}

std::string own_v1_header(int fd) {
    ClientInfo own;
    auto* mine = reinterpret_cast<sockaddr*>(&own.peer.storage);
    auto* theirs = reinterpret_cast<sockaddr*>(&own.local.storage);
    own.peer.length = sizeof(own.peer.storage);
    own.local.length = sizeof(own.local.storage);
    if (::getsockname(fd, mine, &own.peer.length) != 0 ||
        ::getpeername(fd, theirs, &own.local.length) != 0) {
        own = {};
    }
    return proxy_header_for(conf::ProxyHeader::V1, own);
}

}  // namespace postern::proxy
