#pragma once
// Helpers shared by the conf unit tests: a throwaway folder holding dummy certificate and key
// files (the loader checks only that they can be opened), a valid config to build broken ones
// from, and lookups that find an error by key and a line by its text.

#include "conf/load.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>

namespace postern::conf::test {

// A unique folder under the system temp folder, removed with everything in it at scope exit.
class TempDir {
public:
    TempDir() {
        std::random_device random;
        const auto base = std::filesystem::temp_directory_path();
        do {
            path_ = base / ("postern-conf-test-" + std::to_string(random()));
        } while (!std::filesystem::create_directory(path_));
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    // Writes `text` to `relative` (creating folders) and returns the absolute path.
    std::filesystem::path write(const std::filesystem::path& relative,
                                std::string_view text) const {
        const std::filesystem::path file = path_ / relative;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream out{file, std::ios::binary};
        out << text;
        return file;
    }

private:
    std::filesystem::path path_;
};

// Valid up to the listeners: cert.pem and key.pem exist in a ConfDir, one backend "imap".
inline constexpr std::string_view kValidHead = R"([tls]
default_certificate = "mail.example.net"

[[certificate]]
cert = "cert.pem"
key = "key.pem"

[[backend]]
name = "imap"
address = "127.0.0.1:143"
)";

inline constexpr std::string_view kValidListener = R"(
[[listener]]
listen = "127.0.0.1:993"
protocol = "imap"
backend = "imap"
)";

// A TempDir with cert.pem and key.pem in it, and a config file name inside it to load as.
class ConfDir : public TempDir {
public:
    ConfDir() {
        write("cert.pem", "dummy certificate\n");
        write("key.pem", "dummy key\n");
    }
    [[nodiscard]] std::filesystem::path config_file() const { return path() / "postern.toml"; }
    [[nodiscard]] LoadResult load(std::string_view text) const {
        return load_config_text(text, config_file());
    }
};

// 1-based number of the first line of `text` containing `needle`; 0 when none does.
inline std::uint32_t line_of(std::string_view text, std::string_view needle) {
    const std::size_t at = text.find(needle);
    if (at == std::string_view::npos) {
        return 0;
    }
    std::uint32_t line = 1;
    for (std::size_t i = 0; i < at; ++i) {
        if (text[i] == '\n') {
            ++line;
        }
    }
    return line;
}

// The only error of a failed load; fails the test (showing every error) when there is not
// exactly one.
inline ConfigError single_error(const LoadResult& result) {
    INFO(format_errors(result.errors));
    CHECK_FALSE(result.config.has_value());
    REQUIRE(result.errors.size() == 1);
    return result.errors.front();
}

inline bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace postern::conf::test
