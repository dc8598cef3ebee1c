#pragma once
// The process's one logger (spdlog, to stderr) and the sanitizer every untrusted string passes
// through on its way into a log line.

#include "conf/files.hpp"

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace postern::proxy {

// Installs the stderr logger as spdlog's default. Returns false for an unknown level name.
[[nodiscard]] bool setup_logging(std::string_view level);

// strerror() for any thread: conf/'s, the one every layer uses.
using conf::errno_text;

// Bytes outside printable ASCII, quotes and backslashes escaped as \xNN, capped at `max` bytes
// (then "..."). Unquoted (a key=value token) also escapes spaces and '='; `quoted` keeps spaces
// for text that the log line puts between double quotes.
[[nodiscard]] std::string sanitize(std::string_view text, std::size_t max = 160,
                                   bool quoted = false);

}  // namespace postern::proxy
