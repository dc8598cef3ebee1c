#include "protocols/action.hpp"

namespace postern::protocols {

std::string_view to_string(CloseReason reason) noexcept {
    switch (reason) {  // no default: -Wswitch flags a forgotten enumerator
        case CloseReason::ClientQuit:
            return "client_quit";
        case CloseReason::ClientClosed:
            return "client_closed";
        case CloseReason::HandshakeOnly:
            return "handshake_only";
        case CloseReason::BackendClosed:
            return "backend_closed";
        case CloseReason::BackendUnreachable:
            return "backend_unreachable";
        case CloseReason::ForwardingRefused:
            return "forwarding_refused";
        case CloseReason::ProtocolError:
            return "protocol_error";
        case CloseReason::LineTooLong:
            return "line_too_long";
        case CloseReason::TooManyErrors:
            return "too_many_errors";
        case CloseReason::Timeout:
            return "timeout";
        case CloseReason::TlsRequired:
            return "tls_required";
        case CloseReason::TlsFailed:
            return "tls_failed";
        case CloseReason::OverLimit:
            return "over_limit";
        case CloseReason::Drained:
            return "drained";
        case CloseReason::Shutdown:
            return "shutdown";
        case CloseReason::Internal:
            return "internal";
    }
    return "unknown";  // unreachable for valid values; keeps GCC quiet
}

}  // namespace postern::protocols
