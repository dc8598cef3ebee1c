#include "proxy/listen_sockets.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace postern::proxy::test {
namespace {

SocketAddress loopback(std::uint16_t port) {
    SocketAddress out;
    auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(port);
    out.length = sizeof(sockaddr_in);
    return out;
}

std::uint16_t port_of(int fd) {
    sockaddr_in in{};
    socklen_t length = sizeof in;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &length) == 0);
    return ntohs(in.sin_port);
}

// A listening socket on a port from the OS, as a service manager would hand it over.
InheritedSocket inherited(std::uint16_t port = 0, bool reuse_port = false) {
    std::string error;
    InheritedSocket out{bind_listener(loopback(port), reuse_port, error), {}};
    REQUIRE_MESSAGE(out.fd.get() >= 0, error);
    out.address = loopback(port_of(out.fd.get()));
    return out;
}

conf::Config config_for(std::initializer_list<std::uint16_t> ports) {
    conf::Config config;
    for (const std::uint16_t port : ports) {
        conf::ListenerSpec spec;
        spec.listen = conf::Endpoint{"127.0.0.1", port};
        config.listeners.push_back(spec);
    }
    return config;
}

// The socket (its inode) behind a descriptor: duplicates share it.
ino_t socket_of(int fd) {
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    return st.st_ino;
}

TEST_CASE("an inherited socket is used instead of binding, and shared by every worker") {
    InheritedSocket one = inherited();
    const std::uint16_t port = port_of(one.fd.get());
    const ino_t socket = socket_of(one.fd.get());
    std::vector<InheritedSocket> handed;
    handed.push_back(std::move(one));
    ListenSockets sockets;
    std::string error;
    REQUIRE(sockets.open(config_for({port}), 3, std::move(handed), error));
    CHECK(sockets.inherited_count() == 1);
    REQUIRE(sockets.shared().size() == 1);
    CHECK(sockets.shared()[0].name == "127.0.0.1_" + std::to_string(port));
    std::set<int> descriptors;
    for (unsigned w = 0; w < 3; ++w) {
        auto mine = sockets.take(0, w);
        REQUIRE(mine.size() == 1);
        CHECK(socket_of(mine[0].get()) == socket);  // a duplicate, not a new bind
        descriptors.insert(mine[0].get());
    }
    CHECK(descriptors.size() == 3);  // each worker owns its own descriptor
}

TEST_CASE("more inherited sockets than workers: every socket has a worker") {
    std::vector<InheritedSocket> handed;
    handed.push_back(inherited(0, true));
    const std::uint16_t port = port_of(handed[0].fd.get());
    handed.push_back(inherited(port, true));
    handed.push_back(inherited(port, true));
    ListenSockets sockets;
    std::string error;
    REQUIRE(sockets.open(config_for({port}), 2, std::move(handed), error));
    CHECK(sockets.inherited_count() == 3);
    CHECK(sockets.shared().size() == 3);
    CHECK(sockets.take(0, 0).size() == 2);
    CHECK(sockets.take(0, 1).size() == 1);
}

TEST_CASE(
    "a listener without an inherited socket binds one per worker; an unwanted one is closed") {
    InheritedSocket unwanted = inherited();
    const int unwanted_fd = unwanted.fd.get();
    InheritedSocket probe = inherited();  // a free port for the listener
    const std::uint16_t port = port_of(probe.fd.get());
    probe.fd.reset();
    std::vector<InheritedSocket> handed;
    handed.push_back(std::move(unwanted));
    ListenSockets sockets;
    std::string error;
    REQUIRE_MESSAGE(sockets.open(config_for({port}), 2, std::move(handed), error), error);
    CHECK(sockets.inherited_count() == 0);
    CHECK(sockets.shared().size() == 2);
    auto first = sockets.take(0, 0);
    auto second = sockets.take(0, 1);
    REQUIRE(first.size() == 1);
    REQUIRE(second.size() == 1);
    CHECK(socket_of(first[0].get()) != socket_of(second[0].get()));  // SO_REUSEPORT pair
    CHECK(port_of(first[0].get()) == port);
    CHECK(::fcntl(unwanted_fd, F_GETFD) == -1);  // closed
}

TEST_CASE("an address in use names the listener") {
    InheritedSocket busy = inherited();
    const std::uint16_t port = port_of(busy.fd.get());
    ListenSockets sockets;
    std::string error;
    CHECK_FALSE(sockets.open(config_for({port}), 1, {}, error));
    CHECK(error ==
          "cannot listen on 127.0.0.1:" + std::to_string(port) + ": Address already in use");
}

}  // namespace
}  // namespace postern::proxy::test
