#pragma once
// The PROXY protocol at postern's two edges, in socket terms: the header written to a backend
// with send_proxy (who the client is, what it connected to, its SNI and TLS), and a header read
// from a trusted balancer with accept_proxy turned back into socket addresses. The bytes
// themselves are protocols/proxy_header.hpp's.

#include "conf/config.hpp"
#include "protocols/proxy_header.hpp"
#include "proxy/backend_connector.hpp"
#include "proxy/endpoint.hpp"

#include <string>
#include <vector>

namespace postern::proxy {

// An IPv4-mapped IPv6 address (a client of a dual-stack listener) comes out as the IPv4
// address it carries: backends log and match it as IPv4. AF_UNSPEC: family 0.
[[nodiscard]] protocols::proxy_header::Address header_address(const SocketAddress& address);
[[nodiscard]] SocketAddress socket_address(const protocols::proxy_header::Address& address);

// accept_proxy: whether a connection from `peer` may send a PROXY header (trusted_proxies).
[[nodiscard]] bool trusted_proxy(const std::vector<conf::Network>& networks, const sockaddr* peer);

// Whether the peer has shut down its side of `fd`. The header is read with MSG_PEEK, which
// returns the same bytes again and never the end of the stream behind them, so a balancer
// that sends part of a header and closes would otherwise hold the session until its timeout.
[[nodiscard]] bool peer_shut_down(int fd) noexcept;

// The header for `client`: LOCAL (v2) or UNKNOWN (v1) when there is no client (a local check);
// v2 adds the SNI as PP2_TYPE_AUTHORITY and, once TLS is up, PP2_TYPE_SSL with its version and
// cipher.
[[nodiscard]] std::string proxy_header_for(conf::ProxyHeader version, const ClientInfo& client);

// A v1 header for a connection of postern's own (no client) once `fd` is connected: its own
// two endpoints, postern as the client. The spec's "PROXY UNKNOWN" means just that, but Postfix
// 3.7 refuses it ("haproxy read: bad or missing protocol type"); v2 LOCAL it accepts. UNKNOWN
// when the endpoints cannot be read.
[[nodiscard]] std::string own_v1_header(int fd);

}  // namespace postern::proxy
