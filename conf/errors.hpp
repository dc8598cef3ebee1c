#pragma once
// Config and certificate errors, collected rather than thrown, and rendered like compiler
// diagnostics so an editor can jump to them:
//   /etc/postern/postern.toml:14:11: listener[2].backend: no backend named "imapx" (have: imap)
// line/column are 0 when no source position is known (then they are left out).

#include <cstdint>
#include <string>
#include <vector>

namespace postern::conf {

struct ConfigError {
    std::string file;
    std::uint32_t line = 0;
    std::uint32_t column = 0;
    std::string key;      // dotted path, 1-based indexes: "listener[2].backend"; may be empty
    std::string message;  // what is wrong, and what would be accepted
};

// "file:line:col: key: message"; line/col left out when 0, "key: " when the key is empty.
[[nodiscard]] std::string format_error(const ConfigError& error);
// One format_error line per error, each ending in '\n'; "" for no errors.
[[nodiscard]] std::string format_errors(const std::vector<ConfigError>& errors);

}  // namespace postern::conf
