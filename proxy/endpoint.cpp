#include "proxy/endpoint.hpp"

#include <arpa/inet.h>
#include <array>
#include <cstring>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

namespace postern::proxy {

AddrInfoPtr lookup(const conf::Endpoint& endpoint, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(endpoint.port);
    const int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found);
    AddrInfoPtr owner{found};
    if (rc != 0 || found == nullptr) {
        error = rc != 0 ? gai_strerror(rc) : "no address";
        return nullptr;
    }
    return owner;
}

bool resolve(const conf::Endpoint& endpoint, SocketAddress& out, std::string& error) {
    const AddrInfoPtr found = lookup(endpoint, error);
    if (!found) {
        error.insert(0, "cannot resolve " + endpoint.to_string() + ": ");
        return false;
    }
    std::memcpy(&out.storage, found->ai_addr, found->ai_addrlen);
    out.length = found->ai_addrlen;
    return true;
}

void set_nodelay(int fd) noexcept {
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

HostPort host_port(const sockaddr* address) {
    std::array<char, INET6_ADDRSTRLEN> buffer{};
    if (address->sa_family == AF_INET) {
        sockaddr_in in{};
        std::memcpy(&in, address, sizeof(in));
        inet_ntop(AF_INET, &in.sin_addr, buffer.data(), buffer.size());
        return {buffer.data(), ntohs(in.sin_port)};
    }
    if (address->sa_family == AF_INET6) {
        sockaddr_in6 in6{};
        std::memcpy(&in6, address, sizeof(in6));
        if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
            inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], buffer.data(), buffer.size());
        } else {
            inet_ntop(AF_INET6, &in6.sin6_addr, buffer.data(), buffer.size());
        }
        return {buffer.data(), ntohs(in6.sin6_port)};
    }
    return {};
}

std::string to_string(const sockaddr* address) {
    const HostPort hp = host_port(address);
    if (hp.host.empty()) {
        return "unknown";
    }
    const bool v6 = hp.host.find(':') != std::string::npos;
    return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

std::string machine_fqdn() {
    std::array<char, 256> buffer{};
    char* host = buffer.data();
    if (gethostname(host, buffer.size() - 1) != 0 || host[0] == '\0') {
        return "localhost";
    }
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    addrinfo* found = nullptr;
    if (getaddrinfo(host, nullptr, &hints, &found) != 0 || found == nullptr) {
        return host;
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner{found, &freeaddrinfo};
    return found->ai_canonname != nullptr && found->ai_canonname[0] != '\0' ? found->ai_canonname
                                                                            : host;
}

}  // namespace postern::proxy
