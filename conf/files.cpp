#include "conf/files.hpp"

#include <cerrno>
#include <cstdio>
#include <system_error>

namespace postern::conf {

std::string errno_text(int code) {
    return std::error_code{code, std::generic_category()}.message();
}

}  // namespace postern::conf

namespace postern::conf::detail {

namespace fs = std::filesystem;

std::optional<std::string> unreadable_file_reason(const fs::path& path) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (fs::is_directory(status)) {
        return errno_text(EISDIR);
    }
    // Opening a FIFO would block startup until some writer appears.
    if (fs::exists(status) && !fs::is_regular_file(status)) {
        return std::string{"not a regular file"};
    }
    const FilePtr stream{std::fopen(path.c_str(), "rb")};
    if (!stream) {
        return errno_text(errno);
    }
    return std::nullopt;
}

std::optional<std::string> unreadable_dir_reason(const fs::path& path) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec) {
        return ec.message();
    }
    if (!fs::is_directory(status)) {
        return errno_text(ENOTDIR);
    }
    // Listing, not only stat: a folder without read permission stats fine.
    const fs::directory_iterator listing{path, ec};
    if (ec) {
        return ec.message();
    }
    return std::nullopt;
}

}  // namespace postern::conf::detail
