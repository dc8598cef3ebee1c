#pragma once
// errno_text() is the one strerror wrapper and FilePtr the one owner of a C stdio stream of
// every layer (conf/ is the leaf all link). Reading what the config names is
// conf/file_snapshot.hpp's business.

#include <cstdio>
#include <memory>
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
