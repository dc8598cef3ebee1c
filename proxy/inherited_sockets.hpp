#pragma once
// Listening sockets handed to postern at exec time the way systemd's socket activation does it
// (sd_listen_fds(3)): LISTEN_PID names this process, LISTEN_FDS counts the descriptors from 3
// up. Both a systemd .socket unit and a postern process replacing itself
// (proxy/replacement.hpp) start postern this way. The variables are removed from the
// environment once read, so no program started later takes them for its own.

#include "proxy/listen_sockets.hpp"

#include <string>
#include <vector>

namespace postern::proxy {

// The inherited listening TCP sockets (none when LISTEN_PID is absent or names another
// process), each made non-blocking and close-on-exec. A descriptor that is not a listening
// stream socket is an error: `error` says which, and the result is empty.
[[nodiscard]] std::vector<InheritedSocket> take_inherited_sockets(std::string& error);

}  // namespace postern::proxy
