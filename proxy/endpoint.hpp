#pragma once
// Turning configured "host:port" endpoints into socket addresses, once, at startup (so no
// session ever blocks on a resolver), and socket addresses back into log text.

#include <sys/socket.h>

#include <string>

#include "conf/config.hpp"

namespace postern::proxy {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    [[nodiscard]] const sockaddr* get() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage);
    }
};

// First address the resolver gives for the endpoint; false with `error` set otherwise.
[[nodiscard]] bool resolve(const conf::Endpoint& endpoint, SocketAddress& out, std::string& error);

// "127.0.0.1:993", "[::1]:993"
[[nodiscard]] std::string to_string(const sockaddr* address);

}  // namespace postern::proxy
