#pragma once
// The vocabulary between a protocol machine and the session that drives it: what happened
// (Event, bytes from a Peer) and what to do (Action). Pure data; no I/O here.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace postern::protocols {

enum class Peer : std::uint8_t { Client, Backend };

enum class Event : std::uint8_t {
    ClientConnected,  // STARTTLS listeners: a plaintext client connected; postern speaks first
    TlsReady,         // handshake with the client finished (implicit, or after StartTls)
    BackendReady,     // TCP connection to the backend is up (greeting not read yet)
    BackendFailed,    // connect refused, timed out, or reset before the greeting
};

enum class CloseReason : std::uint8_t {
    ClientQuit,          // client said QUIT/LOGOUT and got its answer
    ClientClosed,        // client closed the connection
    HandshakeOnly,       // client closed right after the TLS handshake: no backend was reached
    BackendClosed,       // backend closed the connection
    BackendUnreachable,  // could not connect, or the backend refused us in its greeting
    ForwardingRefused,   // the backend refused the client identity postern forwarded (XCLIENT,
                         // ID): it does not trust postern, a backend setting to fix
    ProtocolError,       // bytes that break the protocol (NUL, junk, bad literal)
    LineTooLong,         // a line over the configured limit
    TooManyErrors,       // too many bad commands in a row
    Timeout,             // idle, handshake or pre-TLS timeout
    TlsRequired,         // client tried to go on without TLS where TLS is required
    TlsFailed,           // handshake failed
    OverLimit,           // over a connection limit (proxy/client_limits.hpp)
    Drained,             // postern is stopping: ended politely between commands
    Shutdown,            // postern is stopping: cut at shutdown_timeout, a second signal, or
                         // before the client's dialogue began (TLS handshake)
    Internal,            // a bug: an exception reached a callback
};

[[nodiscard]] std::string_view to_string(CloseReason reason) noexcept;

struct SendToClient {
    std::string bytes;
};
struct SendToBackend {
    std::string bytes;
};
struct StartTls {};        // after the SendToClient bytes before it have been flushed
struct ConnectBackend {};  // open the backend connection; answer with BackendReady/BackendFailed
struct Passthrough {};     // the machine is done: relay both ways as-is, free the machine
struct Close {
    CloseReason reason;
};

using Action =
    std::variant<SendToClient, SendToBackend, StartTls, ConnectBackend, Passthrough, Close>;
using Actions = std::vector<Action>;  // owned by the session, cleared and reused per call

}  // namespace postern::protocols
