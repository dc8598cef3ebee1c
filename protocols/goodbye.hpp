#pragma once
// Recognizes a client's goodbye (IMAP "<tag> LOGOUT", POP3 and SMTP "QUIT") at the end of what
// it sent. After Passthrough no machine watches the stream; the session keeps the last bytes the
// client sent so that a backend closing right after a goodbye is logged as client_quit, not as
// the backend hanging up.

#include "protocols/protocol.hpp"

#include <cstddef>
#include <string_view>

namespace postern::protocols {

// Longest tail worth keeping: a tag, a space, "LOGOUT", CRLF.
inline constexpr std::size_t kGoodbyeTail = 64;

// `tail`: the last bytes the client sent (at most kGoodbyeTail). Case-insensitive.
[[nodiscard]] bool ends_with_goodbye(Protocol protocol, std::string_view tail) noexcept;

}  // namespace postern::protocols
