#include "conf/errors.hpp"

namespace postern::conf {

std::string format_error(const ConfigError& error) {
    std::string out = error.file;
    // An editor reads "file:line:col:"; a column without a line means nothing to it.
    if (error.line != 0) {
        out += ':' + std::to_string(error.line);
        if (error.column != 0) {
            out += ':' + std::to_string(error.column);
        }
    }
    if (!out.empty()) {
        out += ": ";
    }
    if (!error.key.empty()) {
        out += error.key;
        out += ": ";
    }
    out += error.message;
    return out;
}

std::string format_errors(const std::vector<ConfigError>& errors) {
    std::string out;
    for (const ConfigError& error : errors) {
        out += format_error(error);
        out += '\n';
    }
    return out;
}

}  // namespace postern::conf
