#include "proxy/log_format.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <type_traits>

namespace postern::proxy {

namespace {

using conf::LogFormat;
using spdlog::details::log_msg;

std::string_view level_name(spdlog::level::level_enum level) {
    const spdlog::string_view_t name = spdlog::level::to_string_view(level);
    return {name.data(), name.size()};
}

std::string_view payload(const log_msg& msg) {
    return {msg.payload.data(), msg.payload.size()};
}

// ISO 8601 in UTC with milliseconds, "2026-11-22T09:50:06.524Z".
std::string utc_time(spdlog::log_clock::time_point time) {
    const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time - seconds).count();
    const std::time_t t = spdlog::log_clock::to_time_t(seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", tm, ms);
}

void append(spdlog::memory_buf_t& dest, std::string_view text) {
    dest.append(text.data(), text.data() + text.size());
}

}  // namespace

LineFormatter::LineFormatter(LogFormat format, bool journal)
    : format_(format),
      journal_(journal),
      text_(journal ? "%l %v" : "%Y-%m-%dT%H:%M:%S.%e%z %l %v") {}

void LineFormatter::format(const log_msg& msg, spdlog::memory_buf_t& dest) {
    format(msg, {}, dest);
}

void LineFormatter::format(const log_msg& msg, std::span<const LogField> fields,
                           spdlog::memory_buf_t& dest) {
    if (journal_) {
        fmt::format_to(std::back_inserter(dest), "<{}>", syslog_priority(msg.level));
    }
    if (format_ == LogFormat::Text) {
        if (fields.empty() && origin_.empty()) {
            text_.format(msg, dest);
            return;
        }
        const std::string line = message(msg, fields);
        log_msg with_fields = msg;
        with_fields.payload = line;
        text_.format(with_fields, dest);
        return;
    }
    // ordered_json: time, level and message first, then the fields in the caller's order.
    nlohmann::ordered_json object;
    object["time"] = utc_time(msg.time);
    object["level"] = level_name(msg.level);
    object["message"] = message(msg, {});
    for (const LogField& field : fields) {
        std::visit([&](const auto& value) { object[std::string{field.key}] = value; }, field.value);
    }
    // Replace, not throw: a message may quote bytes that are not UTF-8 (a file name, an
    // OpenSSL error); sanitize()d strings are plain ASCII already.
    append(dest, object.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    append(dest, "\n");
}

std::string LineFormatter::message(const log_msg& msg, std::span<const LogField> fields) const {
    std::string text = origin_.empty() ? std::string{} : origin_ + ": ";
    text += text_line(payload(msg), fields);
    return text;
}

std::unique_ptr<spdlog::formatter> LineFormatter::clone() const {
    auto copy = std::make_unique<LineFormatter>(format_, journal_);
    copy->set_origin(origin_);
    return copy;
}

std::string text_line(std::string_view message, std::span<const LogField> fields) {
    std::string line{message};
    for (const LogField& field : fields) {
        line += ' ';
        line += field.key;
        line += '=';
        if (const auto* number = std::get_if<std::uint64_t>(&field.value)) {
            line += std::to_string(*number);
        } else if (field.quoted) {
            line += '"';
            line += std::get<std::string>(field.value);
            line += '"';
        } else {
            line += std::get<std::string>(field.value);
        }
    }
    return line;
}

int syslog_priority(spdlog::level::level_enum level) noexcept {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return 7;  // LOG_DEBUG
        case spdlog::level::warn:
            return 4;  // LOG_WARNING
        case spdlog::level::err:
            return 3;  // LOG_ERR
        case spdlog::level::critical:
            return 2;  // LOG_CRIT
        default:
            return 6;  // LOG_INFO
    }
}

bool is_journal_stream(const char* journal_stream, int fd) noexcept {
    if (journal_stream == nullptr) {
        return false;
    }
    const std::string_view text{journal_stream};
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return false;
    }
    const auto number = [](std::string_view digits, std::uint64_t& out) {
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        return ec == std::errc{} && end == digits.data() + digits.size() && !digits.empty();
    };
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    struct stat st {};
    return number(text.substr(0, colon), dev) && number(text.substr(colon + 1), ino) &&
           ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == dev &&
           static_cast<std::uint64_t>(st.st_ino) == ino;
}

void LogSink::log_fields(const log_msg& msg, std::span<const LogField> fields) {
    const std::lock_guard lock(mutex_);
    spdlog::memory_buf_t line;
    formatter_.format(msg, fields, line);
    write(line);
}

void LogSink::set_origin(std::string origin) {
    const std::lock_guard lock(mutex_);
    formatter_.set_origin(std::move(origin));
}

void LogSink::sink_it_(const log_msg& msg) {
    spdlog::memory_buf_t line;
    formatter_.format(msg, line);
    write(line);
}

void LogSink::flush_() {
    (void)std::fflush(out_);
}

void LogSink::write(const spdlog::memory_buf_t& line) {
    // One fwrite per line and a flush: a line reaches stderr (the journal) whole and at once.
    (void)std::fwrite(line.data(), 1, line.size(), out_);
    (void)std::fflush(out_);
}

}  // namespace postern::proxy
