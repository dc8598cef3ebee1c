// The two log formats (server.log_format) and the journal's priority prefix, on lines built
// by hand with a fixed time; the stderr sink; the JOURNAL_STREAM check against a real file.
#include "proxy/log_format.hpp"

#include "conf/files.hpp"
#include "proxy/log.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using postern::conf::LogFormat;
using postern::proxy::is_journal_stream;
using postern::proxy::LineFormatter;
using postern::proxy::LogField;
using postern::proxy::LogSink;
using postern::proxy::text_line;

namespace {

using spdlog::details::log_msg;

// 2026-11-22T09:50:06.524Z
log_msg message(spdlog::level::level_enum level, std::string_view text) {
    log_msg msg{"postern", level, spdlog::string_view_t{text.data(), text.size()}};
    msg.time = spdlog::log_clock::from_time_t(1795341006) + std::chrono::milliseconds{524};
    return msg;
}

// Today's session end line, field by field.
std::vector<LogField> session_fields() {
    return {{"client", "203.0.113.7:52336"},
            {"listener", "0.0.0.0:993"},
            {"sni", "mail.b.test"},
            {"bytes_in", std::uint64_t{97}},
            {"duration_ms", std::uint64_t{3}},
            {"end", "backend_unreachable"},
            {"detail", "connect: Connection refused", true}};
}
constexpr std::string_view kSessionText =
    "session end client=203.0.113.7:52336 listener=0.0.0.0:993 sni=mail.b.test bytes_in=97 "
    "duration_ms=3 end=backend_unreachable detail=\"connect: Connection refused\"";

std::string format(LogFormat format, bool journal, const log_msg& msg,
                   std::span<const LogField> fields = {}) {
    LineFormatter formatter{format, journal};
    spdlog::memory_buf_t out;
    formatter.format(msg, fields, out);
    return {out.data(), out.size()};
}

}  // namespace

TEST_CASE("log: text lines keep today's form: local time, level, message, key=value fields") {
    const std::string line = format(LogFormat::Text, false,
                                    message(spdlog::level::warn, "session end"), session_fields());
    const std::regex form{R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.524[+-]\d\d:\d\d warning (.*)\n$)"};
    std::smatch m;
    REQUIRE(std::regex_match(line, m, form));
    CHECK(m[1].str() == kSessionText);
    CHECK(text_line("session end", session_fields()) == kSessionText);
}

TEST_CASE("log: a JSON line is one object with time (UTC, ms), level and message") {
    const std::string line =
        format(LogFormat::Json, false, message(spdlog::level::info, "listening on 0.0.0.0:993"));
    CHECK(
        line ==
        R"({"time":"2026-11-22T09:50:06.524Z","level":"info","message":"listening on 0.0.0.0:993"})"
        "\n");
}

TEST_CASE("log: a structured JSON line has each field as its own key, numbers as numbers") {
    const std::string line = format(LogFormat::Json, false,
                                    message(spdlog::level::warn, "session end"), session_fields());
    REQUIRE(line.ends_with("}\n"));
    CHECK(line.find('\n') == line.size() - 1);
    const auto object = nlohmann::ordered_json::parse(line);
    CHECK(object["time"] == "2026-11-22T09:50:06.524Z");
    CHECK(object["level"] == "warning");
    CHECK(object["message"] == "session end");
    CHECK(object["client"] == "203.0.113.7:52336");
    CHECK(object["bytes_in"].is_number_unsigned());
    CHECK(object["bytes_in"] == 97);
    CHECK(object["duration_ms"] == 3);
    CHECK(object["detail"] == "connect: Connection refused");  // no quotes of the text form
    std::vector<std::string> keys;
    for (const auto& item : object.items()) {
        keys.push_back(item.key());
    }
    CHECK(keys == std::vector<std::string>{"time", "level", "message", "client", "listener", "sni",
                                           "bytes_in", "duration_ms", "end", "detail"});
}

TEST_CASE("log: bytes that are not UTF-8, quotes and newlines leave one valid JSON line") {
    const std::string text = "cannot read /etc/\xff\xfe\"x\"\nnext";
    const std::string line = format(LogFormat::Json, false, message(spdlog::level::err, text),
                                    std::array<LogField, 1>{{{"file", std::string{"\xc3\x28"}}}});
    CHECK(line.find('\n') == line.size() - 1);
    const auto object = nlohmann::json::parse(line);
    CHECK(object["message"] == "cannot read /etc/\xef\xbf\xbd\xef\xbf\xbd\"x\"\nnext");
    CHECK(object["level"] == "error");
    CHECK(object["file"] == "\xef\xbf\xbd(");
}

TEST_CASE("log: under the journal, text drops its timestamp for the syslog priority") {
    struct Row {
        spdlog::level::level_enum level;
        std::string_view line;
    };
    constexpr auto kRows = std::to_array<Row>({
        {spdlog::level::trace, "<7>trace hello\n"},
        {spdlog::level::debug, "<7>debug hello\n"},
        {spdlog::level::info, "<6>info hello\n"},
        {spdlog::level::warn, "<4>warning hello\n"},
        {spdlog::level::err, "<3>error hello\n"},
        {spdlog::level::critical, "<2>critical hello\n"},
    });
    for (const Row& row : kRows) {
        CHECK(format(LogFormat::Text, true, message(row.level, "hello")) == row.line);
    }
    CHECK(format(LogFormat::Text, true, message(spdlog::level::info, "session end"),
                 session_fields()) == "<6>info " + std::string{kSessionText} + "\n");
}

TEST_CASE("log: under the journal, a JSON line starts with the priority the journal strips") {
    const std::string line = format(LogFormat::Json, true, message(spdlog::level::warn, "hello"));
    REQUIRE(line.starts_with("<4>{"));
    CHECK(nlohmann::json::parse(line.substr(3))["message"] == "hello");
}

TEST_CASE("log: the sink writes plain and structured lines whole, in the configured format") {
    const postern::conf::FilePtr file{std::tmpfile()};
    REQUIRE(file != nullptr);
    {
        LogSink sink{LogFormat::Json, false, file.get()};
        sink.log(message(spdlog::level::info, "first"));
        sink.set_pattern("%v");  // ignored: the format is the config's
        sink.log_fields(message(spdlog::level::warn, "session end"), session_fields());
    }
    std::rewind(file.get());
    std::array<char, 4096> buffer{};
    const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    const std::string text{buffer.data(), n};
    const auto newline = text.find('\n');
    REQUIRE(newline != std::string::npos);
    CHECK(nlohmann::json::parse(text.substr(0, newline))["message"] == "first");
    const auto second = nlohmann::json::parse(text.substr(newline + 1));
    CHECK(second["end"] == "backend_unreachable");
}

TEST_CASE("log: an origin starts every message, in both formats and after a clone") {
    LineFormatter formatter{LogFormat::Text, true};
    formatter.set_origin("privileged helper");
    const auto clone = formatter.clone();
    for (spdlog::formatter* f : {static_cast<spdlog::formatter*>(&formatter), clone.get()}) {
        spdlog::memory_buf_t out;
        f->format(message(spdlog::level::err, "poll: Interrupted"), out);
        CHECK(std::string{out.data(), out.size()} ==
              "<3>error privileged helper: poll: Interrupted\n");
    }
    LineFormatter json{LogFormat::Json, false};
    json.set_origin("privileged helper");
    spdlog::memory_buf_t out;
    json.format(message(spdlog::level::info, "session end"), session_fields(), out);
    const auto object = nlohmann::json::parse(std::string{out.data(), out.size()});
    CHECK(object["message"] == "privileged helper: session end");
    CHECK(object["end"] == "backend_unreachable");
}

TEST_CASE("log: JOURNAL_STREAM names the journal only when it is the fd's device and inode") {
    const postern::conf::FilePtr file{std::tmpfile()};
    REQUIRE(file != nullptr);
    const int fd = ::fileno(file.get());
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    const std::string dev = std::to_string(st.st_dev);
    const std::string ino = std::to_string(st.st_ino);
    CHECK(is_journal_stream((dev + ":" + ino).c_str(), fd));
    CHECK_FALSE(is_journal_stream(nullptr, fd));
    CHECK_FALSE(is_journal_stream("", fd));
    CHECK_FALSE(is_journal_stream((dev + ":" + std::to_string(st.st_ino + 1)).c_str(), fd));
    CHECK_FALSE(is_journal_stream((std::to_string(st.st_dev + 1) + ":" + ino).c_str(), fd));
    CHECK_FALSE(is_journal_stream((dev + ":" + ino + "x").c_str(), fd));
    CHECK_FALSE(is_journal_stream((":" + ino).c_str(), fd));
    CHECK_FALSE(is_journal_stream((dev + ":" + ino).c_str(), -1));
}
