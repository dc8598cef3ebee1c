#include "proxy/log.hpp"

#include "proxy/log_format.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <memory>
#include <unistd.h>

namespace postern::proxy {

bool setup_logging(std::string_view level, conf::LogFormat format) {
    const auto parsed = spdlog::level::from_str(std::string(level));
    if (parsed == spdlog::level::off && level != "off") {
        return false;
    }
    // NOLINTNEXTLINE(concurrency-mt-unsafe): called once, before any thread starts
    const bool journal = is_journal_stream(std::getenv("JOURNAL_STREAM"), STDERR_FILENO);
    auto logger =
        std::make_shared<spdlog::logger>("postern", std::make_shared<LogSink>(format, journal));
    logger->set_level(parsed);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
    return true;
}

void set_log_origin(std::string_view origin) {
    for (const auto& sink : spdlog::default_logger_raw()->sinks()) {
        if (auto* ours = dynamic_cast<LogSink*>(sink.get())) {
            ours->set_origin(std::string{origin});
        }
    }
}

void log_fields(spdlog::level::level_enum level, std::string_view message,
                std::span<const LogField> fields) {
    spdlog::logger& logger = *spdlog::default_logger_raw();
    if (!logger.should_log(level)) {
        return;
    }
    for (const auto& sink : logger.sinks()) {
        if (auto* ours = dynamic_cast<LogSink*>(sink.get())) {
            try {
                ours->log_fields(
                    spdlog::details::log_msg{logger.name(), level,
                                             spdlog::string_view_t{message.data(), message.size()}},
                    fields);
                return;
            } catch (const std::exception&) {  // e.g. bad_alloc: still try the plain line below
                break;
            }
        }
    }
    // Logging not set up (unit tests), or the structured line failed: the text line.
    logger.log(level, "{}", text_line(message, fields));
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
