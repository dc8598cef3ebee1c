#pragma once
// The process's one logger (spdlog, to stderr) and the sanitizer every untrusted string passes
// through on its way into a log line.

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace postern::proxy {

// Installs the stderr logger as spdlog's default. Returns false for an unknown level name.
[[nodiscard]] bool setup_logging(std::string_view level);

// Bytes outside printable ASCII, quotes and backslashes escaped as \xNN, capped at `max` bytes
// (then "..."). Unquoted (a key=value token) also escapes spaces and '='; `quoted` keeps spaces
// for text that the log line puts between double quotes.
// strerror() for any thread (strerror itself shares one buffer between threads).
[[nodiscard]] std::string errno_text(int error);

[[nodiscard]] std::string sanitize(std::string_view text, std::size_t max = 160,
                                   bool quoted = false);

}  // namespace postern::proxy
