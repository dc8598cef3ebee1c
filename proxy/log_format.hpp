#pragma once
// How one log line is written (server.log_format), and where: LineFormatter renders a line as
// text ("<time> <level> <message> key=value...") or as one JSON object ({"time", "level",
// "message", then each field as its own key}); under the systemd journal the text drops its
// timestamp (the journal keeps its own) and both formats start with the syslog priority
// "<N>", which journald strips and files the line under (`journalctl -p warning`). LogSink is
// the stderr sink that hands structured lines (log_fields()) to the formatter whole, where a
// plain spdlog sink would only see their text.

#include "conf/config.hpp"
#include "proxy/log.hpp"

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

namespace postern::proxy {

class LineFormatter final : public spdlog::formatter {
public:
    LineFormatter(conf::LogFormat format, bool journal);

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    // msg.payload is the message; the fields follow it.
    void format(const spdlog::details::log_msg& msg, std::span<const LogField> fields,
                spdlog::memory_buf_t& dest);
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override;

    // Every message from now on starts with "<origin>: " (set_log_origin()).
    void set_origin(std::string origin) { origin_ = std::move(origin); }

private:
    [[nodiscard]] std::string message(const spdlog::details::log_msg& msg,
                                      std::span<const LogField> fields) const;

    conf::LogFormat format_;
    bool journal_;
    std::string origin_;
    spdlog::pattern_formatter text_;  // the text format's timestamp and level (not under journal)
};

// The text form of a structured line: the message, then " key=value" for each field.
[[nodiscard]] std::string text_line(std::string_view message, std::span<const LogField> fields);

// syslog priority (sd-daemon.h's SD_ERR...) of a spdlog level.
[[nodiscard]] int syslog_priority(spdlog::level::level_enum level) noexcept;

// Whether `fd` is the stream systemd names in JOURNAL_STREAM ("<st_dev>:<st_ino>", decimal):
// sd_journal_stream_fd(3) says to compare both with fstat(2), as a service's stderr may have
// been redirected since. `journal_stream` may be null (not set).
[[nodiscard]] bool is_journal_stream(const char* journal_stream, int fd) noexcept;

class LogSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    LogSink(conf::LogFormat format, bool journal, std::FILE* out = stderr)
        : formatter_(format, journal), out_(out) {}

    void log_fields(const spdlog::details::log_msg& msg, std::span<const LogField> fields);
    void set_origin(std::string origin);

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override;
    // The format is the config's: spdlog patterns do not replace it.
    void set_pattern_(const std::string& /*pattern*/) override {}
    void set_formatter_(std::unique_ptr<spdlog::formatter> /*formatter*/) override {}

private:
    void write(const spdlog::memory_buf_t& line);

    LineFormatter formatter_;
    std::FILE* out_;
};

}  // namespace postern::proxy
