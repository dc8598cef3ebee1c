#include "conf/file_snapshot.hpp"

#include "conf/certificates_dir.hpp"
#include "conf/files.hpp"
#include "conf/load.hpp"
#include "conf/wire.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <system_error>

namespace postern::conf {
namespace {

namespace fs = std::filesystem;

// What a sealed snapshot answers for a path it does not hold. take_file_snapshot holds every
// path the loader and the scan look at, so only a caller outside them can see these.
template <typename Read>
Read unreadable(const std::string& why) {
    Read read;
    read.error = why;
    return read;
}
const FileRead& not_held() {
    static const auto answer = unreadable<FileRead>("not among the files the config names");
    return answer;
}
const DirRead& dir_not_held() {
    static const auto answer = unreadable<DirRead>("not among the folders the config names");
    return answer;
}
// Past kMaxSnapshotFiles nothing more is held (decode() refuses a snapshot with more), but
// every further path still reads as unreadable, with this reason.
const FileRead& too_many_files() {
    static const auto answer = unreadable<FileRead>("the config names more than " +
                                                    std::to_string(kMaxSnapshotFiles) + " files");
    return answer;
}
const DirRead& too_many_dirs() {
    static const auto answer = unreadable<DirRead>("the config names more than " +
                                                   std::to_string(kMaxSnapshotFiles) + " folders");
    return answer;
}

FileRead read_file_now(const fs::path& path, std::size_t budget) {
    FileRead read;
    std::error_code ec;
    const fs::file_status link = fs::symlink_status(path, ec);
    read.exists = fs::exists(link);
    read.is_symlink = fs::is_symlink(link);
    if (read.is_symlink) {
        read.link_target = fs::read_symlink(path, ec).string();
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        read.mode = st.st_mode;
        if (S_ISDIR(st.st_mode)) {
            read.error = errno_text(EISDIR);
            return read;
        }
        // Opening a FIFO would block until some writer appears.
        if (!S_ISREG(st.st_mode)) {
            read.error = "not a regular file";
            return read;
        }
    }
    const FilePtr stream{std::fopen(path.c_str(), "rb")};
    if (!stream) {
        read.error = errno_text(errno);
        return read;
    }
    const std::size_t limit = std::min(kMaxSnapshotFileBytes, budget);
    std::string bytes;
    std::array<char, 16384> chunk{};
    std::size_t got = 0;
    while (bytes.size() <= limit &&
           (got = std::fread(chunk.data(), 1, chunk.size(), stream.get())) > 0) {
        bytes.append(chunk.data(), got);
    }
    // EIO, or a folder swapped in since the stat (it opens fine, and fails here with EISDIR).
    if (std::ferror(stream.get()) != 0) {
        read.error = errno_text(errno);
        return read;
    }
    if (bytes.size() > limit) {
        read.error = limit == kMaxSnapshotFileBytes
                         ? "larger than " + std::to_string(kMaxSnapshotFileBytes) + " bytes"
                         : "the files the config names hold more than " +
                               std::to_string(kMaxSnapshotBytes) + " bytes together";
        return read;
    }
    read.bytes = std::move(bytes);
    return read;
}

DirRead read_dir_now(const fs::path& path) {
    DirRead read;
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec) {
        read.error = ec.message();
        return read;
    }
    if (!fs::is_directory(status)) {
        read.error = errno_text(ENOTDIR);
        return read;
    }
    // Listing, not only stat: a folder without read permission stats fine.
    for (fs::directory_iterator it{path, ec}; !ec && it != fs::directory_iterator{};
         it.increment(ec)) {
        std::error_code type_ec;
        // is_directory follows symlinks, so a symlinked subfolder counts too.
        if (it->is_directory(type_ec)) {
            read.subfolders.push_back(it->path().filename().string());
        }
    }
    if (ec) {
        read.error = ec.message();
        read.subfolders.clear();
        return read;
    }
    // Directory order is the file system's; certificates load, and errors print, by name.
    std::sort(read.subfolders.begin(), read.subfolders.end());
    return read;
}

constexpr std::string_view kMagic = "postern-file-snapshot-2";
constexpr std::size_t kExists = 1;
constexpr std::size_t kSymlink = 2;
constexpr std::size_t kBytes = 4;
constexpr std::size_t kDirError = 8;

}  // namespace

std::shared_ptr<FileSnapshot> FileSnapshot::reading(fs::path config_file) {
    return std::make_shared<FileSnapshot>(Token{}, std::move(config_file), true);
}

FileSnapshot::~FileSnapshot() {
    for (auto& [path, read] : files_) {
        if (read.bytes) {
            wipe(*read.bytes);
        }
    }
}

void FileSnapshot::wipe(std::string& bytes) noexcept {
    // explicit_bzero: a plain memset of memory about to be freed may be optimized away.
    ::explicit_bzero(bytes.data(), bytes.size());
}

const FileRead& FileSnapshot::file(const fs::path& path) const {
    const std::lock_guard lock(mutex_);
    if (const auto it = files_.find(path); it != files_.end()) {
        return it->second;
    }
    if (!reading_) {
        return not_held();
    }
    if (files_.size() >= kMaxSnapshotFiles) {
        return too_many_files();
    }
    FileRead read = read_file_now(path, kMaxSnapshotBytes - total_bytes_);
    total_bytes_ += read.bytes ? read.bytes->size() : 0;
    return files_.emplace(path, std::move(read)).first->second;
}

const DirRead& FileSnapshot::dir(const fs::path& path) const {
    const std::lock_guard lock(mutex_);
    if (const auto it = dirs_.find(path); it != dirs_.end()) {
        return it->second;
    }
    if (!reading_) {
        return dir_not_held();
    }
    if (dirs_.size() >= kMaxSnapshotFiles) {
        return too_many_dirs();
    }
    return dirs_.emplace(path, read_dir_now(path)).first->second;
}

std::size_t FileSnapshot::file_count() const {
    const std::lock_guard lock(mutex_);
    return files_.size();
}

void FileSnapshot::seal() {
    const std::lock_guard lock(mutex_);
    reading_ = false;
}

std::string FileSnapshot::encode() const {
    const std::lock_guard lock(mutex_);
    Writer out;
    out.str(kMagic);
    out.str(config_.string());
    out.u32(files_.size());
    for (const auto& [path, read] : files_) {
        out.str(path.string());
        out.u32((read.exists ? kExists : std::size_t{0}) |
                (read.is_symlink ? kSymlink : std::size_t{0}) |
                (read.bytes ? kBytes : std::size_t{0}));
        out.u32(read.mode);
        out.str(read.link_target);
        out.str(read.bytes ? *read.bytes : read.error);
    }
    out.u32(dirs_.size());
    for (const auto& [path, read] : dirs_) {
        out.str(path.string());
        out.u32(read.error ? kDirError : std::size_t{0});
        out.str(read.error.value_or(std::string{}));
        out.u32(read.subfolders.size());
        for (const std::string& name : read.subfolders) {
            out.str(name);
        }
    }
    return out.take();
}

std::shared_ptr<const FileSnapshot> FileSnapshot::decode(std::string_view bytes) {
    Reader in{bytes};
    std::string magic;
    std::string config;
    if (!in.str(magic) || magic != kMagic || !in.str(config)) {
        return nullptr;
    }
    auto snapshot = std::make_shared<FileSnapshot>(Token{}, fs::path{config}, false);
    std::size_t files = 0;
    // Each file: path, flags, mode, link target, content.
    if (!in.count(files, kMaxSnapshotFiles, 5 * kWireWord)) {
        return nullptr;
    }
    for (std::size_t i = 0; i < files; ++i) {
        std::string path;
        std::size_t flags = 0;
        FileRead read;
        std::string content;
        std::size_t mode = 0;
        if (!in.str(path) || !in.u32(flags) || !in.u32(mode) || !in.str(read.link_target) ||
            !in.str(content)) {
            return nullptr;
        }
        read.mode = static_cast<std::uint32_t>(mode);
        read.exists = (flags & kExists) != 0;
        read.is_symlink = (flags & kSymlink) != 0;
        if ((flags & kBytes) != 0) {
            read.bytes = std::move(content);
        } else {
            read.error = std::move(content);
        }
        snapshot->files_.insert_or_assign(fs::path{path}, std::move(read));
    }
    std::size_t dirs = 0;
    // Each folder: path, flags, error, subfolder count.
    if (!in.count(dirs, kMaxSnapshotFiles, 4 * kWireWord)) {
        return nullptr;
    }
    for (std::size_t i = 0; i < dirs; ++i) {
        std::string path;
        std::size_t flags = 0;
        std::string error;
        std::size_t names = 0;
        DirRead read;
        if (!in.str(path) || !in.u32(flags) || !in.str(error) ||
            !in.count(names, kMaxSnapshotFiles, kWireWord)) {
            return nullptr;
        }
        if ((flags & kDirError) != 0) {
            read.error = std::move(error);
        }
        read.subfolders.resize(names);
        for (std::string& name : read.subfolders) {
            if (!in.str(name)) {
                return nullptr;
            }
        }
        snapshot->dirs_.insert_or_assign(fs::path{path}, std::move(read));
    }
    if (!in.done()) {
        return nullptr;
    }
    return snapshot;
}

fs::path absolute_config_path(const fs::path& path) {
    std::error_code ec;
    fs::path absolute = fs::absolute(path, ec);
    return ec ? path.lexically_normal() : absolute.lexically_normal();
}

std::shared_ptr<const FileSnapshot> take_file_snapshot(const fs::path& config_file) {
    auto snapshot = FileSnapshot::reading(absolute_config_path(config_file));
    // Whatever these two look at is read now and kept; tls::load_certificate then reads the
    // same files' bytes, all of them already held (the loader checked each named file, the scan
    // each subfolder's pair).
    const LoadResult loaded = load_config(*snapshot);
    if (loaded.config) {
        (void)scan_certificates_dir(*loaded.config, *snapshot);
    }
    snapshot->seal();
    return snapshot;
}

}  // namespace postern::conf
