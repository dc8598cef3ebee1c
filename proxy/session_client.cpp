// Who the client is: a trusted balancer's PROXY header read before anything else
// (accept_proxy), and the client's connection limits checked once it names the client; the
// two addresses handed to a backend connector (a PROXY header, the exec environment) and the
// identity the machine forwards (xclient). Part of Session
// (proxy/session.hpp); the phases are in session.cpp, the actions in session_actions.cpp.

#include "protocols/forwarding.hpp"
#include "protocols/proxy_header.hpp"
#include "proxy/log.hpp"
#include "proxy/proxy_protocol.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <sys/socket.h>

namespace postern::proxy {

using protocols::CloseReason;

// Peeks, so that not one byte past the header is taken from the socket: what follows is a TLS
// ClientHello for OpenSSL, or the plaintext dialogue. A header is at most kMaxV2Length bytes;
// a peer that sends more without completing one is refused.
bool Session::step_proxy_header() {
    namespace header = protocols::proxy_header;
    std::array<char, header::kMaxV2Length> peeked{};
    const ssize_t n = ::recv(client_.fd(), peeked.data(), peeked.size(), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return false;
    }
    header::Header parsed;
    header::ParseResult result;
    if (n <= 0) {
        result.status = header::Status::Invalid;
        result.error = n == 0 ? "closed before a complete header" : errno_text(errno);
    } else {
        result = header::parse({peeked.data(), static_cast<std::size_t>(n)}, parsed);
        if (result.status == header::Status::NeedMore &&
            static_cast<std::size_t>(n) == peeked.size()) {
            result.status = header::Status::Invalid;
            result.error = "header too long";
        }
    }
    if (result.status == header::Status::NeedMore) {
        if (!peer_shut_down(client_.fd())) {
            return false;
        }
        result.status = header::Status::Invalid;
        result.error = "closed before a complete header";
    }
    if (result.status == header::Status::Invalid ||
        ::recv(client_.fd(), peeked.data(), result.consumed, 0) !=
            static_cast<ssize_t>(result.consumed)) {
        spdlog::warn("listener {}: closed the connection from balancer {}: bad PROXY header: {}",
                     listener_.name, client_address_, sanitize(result.error, 200, true));
        end_ = CloseReason::ProtocolError;
        end_detail_ = "bad PROXY header";
        finish();
        return false;
    }
    via_ = std::move(client_address_);
    if (parsed.local) {  // the balancer's own health check: served as the balancer
        client_address_ = via_;
    } else {
        proxied_peer_ = socket_address(parsed.source);
        proxied_local_ = socket_address(parsed.destination);
        client_address_ = to_string(proxied_peer_.get());
        // The client's own limits, now that the balancer has named it; refused as at accept
        // (Worker::refuse): the protocol's temporary error, or closed before the handshake.
        if (const Limit refused = admission_.admit_client(proxied_peer_.get());
            refused != Limit::None) {
            listener_.counters.rejected(refused);
            admission_.log_refusal(refused, client_address_);
            end_detail_ = to_string(refused);
            close_with(CloseReason::OverLimit,
                       refusal_reply(listener_.spec.protocol, listener_.spec.tls, refused,
                                     listener_.machine.hostname));
            return phase_ != Phase::Closed;  // Closing: progress() flushes the reply
        }
    }
    begin();
    return phase_ != Phase::Closed;
}

// The client's two addresses: the socket's own, unless a trusted balancer's PROXY header named
// them (accept_proxy).
// False when the socket cannot say (the client reset the connection meanwhile): a backend
// must then not be reached at all, since "no client" would make it see postern's own address.
bool Session::client_addresses(ClientInfo& client) const {
    if (proxied_peer_.length != 0) {
        client.peer = proxied_peer_;
        client.local = proxied_local_;
        return true;
    }
    auto& peer = client.peer;
    auto& local = client.local;
    peer.length = sizeof(peer.storage);
    local.length = sizeof(local.storage);
    return getpeername(client_.fd(), reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) ==
               0 &&
           getsockname(client_.fd(), reinterpret_cast<sockaddr*>(&local.storage), &local.length) ==
               0;
}

// xclient: the machine sends the protocol's forwarding command after the backend's greeting.
// Built only from the socket addresses (or a trusted balancer's header), never from anything
// the client typed.
void Session::forward_identity(const ClientInfo& client) {
    namespace header = protocols::proxy_header;
    const header::Address peer = header_address(client.peer);
    const header::Address local = header_address(client.local);
    if (peer.family == 0) {
        return;
    }
    machine_->forward_identity({.address = header::to_string(peer),
                                .port = peer.port,
                                .local_address = local.family != 0 ? header::to_string(local) : "",
                                .local_port = local.port});
}

}  // namespace postern::proxy
