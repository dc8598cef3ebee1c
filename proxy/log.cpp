#include "proxy/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>

namespace postern::proxy {

bool setup_logging(std::string_view level) {
    const auto parsed = spdlog::level::from_str(std::string(level));
    if (parsed == spdlog::level::off && level != "off") {
        return false;
    }
    auto logger = spdlog::stderr_logger_mt("postern");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    logger->set_level(parsed);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
    return true;
}

std::string sanitize(std::string_view text, std::size_t max, bool quoted) {
    static constexpr std::string_view kHex = "0123456789abcdef";
    std::string out;
    out.reserve(std::min(text.size(), max) + 8);
    for (char c : text.substr(0, max)) {
        const auto u = static_cast<unsigned char>(c);
        const bool plain = quoted ? (u >= 0x20 && u <= 0x7e) : (u > 0x20 && u <= 0x7e && c != '=');
        if (!plain || c == '"' || c == '\\') {
            out += "\\x";
            out += kHex[u >> 4U];
            out += kHex[u & 0xfU];
        } else {
            out += c;
        }
    }
    if (text.size() > max) {
        out += "...";
    }
    return out;
}

}  // namespace postern::proxy
