#pragma once
// The process's one logger (spdlog, to stderr), the sanitizer every untrusted string passes
// through on its way into a log line, and the structured lines (the session end line) whose
// fields each format renders its own way (proxy/log_format.hpp).

#include "conf/config.hpp"
#include "conf/files.hpp"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace postern::proxy {

// Installs the stderr logger as spdlog's default, writing `format` (server.log_format); when
// stderr is the systemd journal (JOURNAL_STREAM names it), lines carry the journal's priority
// prefix instead of a timestamp. Returns false for an unknown level name.
[[nodiscard]] bool setup_logging(std::string_view level,
                                 conf::LogFormat format = conf::LogFormat::Text);

// From now on every line's message starts with "<origin>: " (the privileged helper's process
// names itself so), in either format. Does nothing before setup_logging().
void set_log_origin(std::string_view origin);

// strerror() for any thread: conf/'s, the one every layer uses.
using conf::errno_text;

// Bytes outside printable ASCII, quotes and backslashes escaped as \xNN, capped at `max` bytes
// (then "..."). Unquoted (a key=value token) also escapes spaces and '='; `quoted` keeps spaces
// for text that the log line puts between double quotes.
[[nodiscard]] std::string sanitize(std::string_view text, std::size_t max = 160,
                                   bool quoted = false);

// One field of a structured line: `key=value` in text (`key="value"` when quoted), its own key
// in JSON (a number stays a number). Strings are written as given: untrusted text must be
// sanitize()d first (unquoted, or quoted when `quoted`), as the text line needs.
struct LogField {
    std::string_view key;
    std::variant<std::string, std::uint64_t> value;
    bool quoted = false;
};

// Logs `message` followed by `fields` at `level` through the default logger.
void log_fields(spdlog::level::level_enum level, std::string_view message,
                std::span<const LogField> fields);

}  // namespace postern::proxy
