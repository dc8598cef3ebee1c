#pragma once
// File checks shared by the loader and the certificates_dir scan: can this process read a
// path, and if not, the OS's words for why. Nothing is parsed here. The checks are private to
// conf/; errno_text() is the one strerror wrapper and FilePtr the one owner of a C stdio stream
// of every layer (conf/ is the leaf all link).

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace postern::conf {

// strerror() for an errno value, safe from any thread (strerror itself may share one buffer
// between threads): "No such file or directory".
[[nodiscard]] std::string errno_text(int code);

// Owns a std::FILE* from std::fopen. Every stream postern opens is only read, so what fclose
// returns says nothing worth reporting.
struct FileClose {
    void operator()(std::FILE* file) const noexcept { (void)std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileClose>;

}  // namespace postern::conf

namespace postern::conf::detail {

// nullopt when `path` is a regular file (symlinks followed) this process can open for reading;
// otherwise why not. Never blocks on a FIFO.
[[nodiscard]] std::optional<std::string> unreadable_file_reason(const std::filesystem::path& path);

// nullopt when `path` is a directory (symlinks followed) whose entries this process can list;
// otherwise why not.
[[nodiscard]] std::optional<std::string> unreadable_dir_reason(const std::filesystem::path& path);

}  // namespace postern::conf::detail
