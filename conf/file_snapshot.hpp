#pragma once
// What the config and the certificates need from the file system, read in one place: the
// config file's text and, for every file the config names (cert, key, pkcs12, password_file;
// tls.certificates_dir's listing and each subfolder's fullchain.pem and privkey.pem), its bytes
// or the OS's reason it could not be read. The loader's file checks (conf/load.cpp), the
// certificates_dir scan and tls/ read only from a snapshot, so a process that gave up its
// privileges needs no file access: its snapshot is taken by the privileged helper
// (proxy/privileged_helper.hpp) and crosses a socketpair (encode/decode).
//
// take_file_snapshot decides what to read by running the loader and the folder scan on a
// snapshot that reads on demand, so it reads exactly what they look at and nothing else; a
// sealed snapshot never touches the disk (a path it does not hold reads as unreadable). Safe to
// share between threads (tls::CertStore::build loads on several).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::conf {

// Bounds for one snapshot: a certificate, key or bundle is a few KiB; 10,000 certbot folders
// are 20,000 files.
inline constexpr std::size_t kMaxSnapshotFileBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxSnapshotFiles = 100'000;
inline constexpr std::size_t kMaxSnapshotBytes = std::size_t{256} << 20;  // all files together

// One file as the snapshot saw it (symlinks followed for the content).
struct FileRead {
    bool exists = false;      // the path itself is there (a dangling symlink is)
    bool is_symlink = false;  // ... and is a symlink, to link_target
    std::string link_target;
    std::optional<std::string> bytes;  // the content, when readable
    std::string error;                 // why not, in the OS's words, when bytes is unset
    std::uint32_t mode = 0;  // st_mode (symlinks followed); 0 when it could not be stat'ed
    friend bool operator==(const FileRead&, const FileRead&) = default;
};

// One folder: can its entries be listed, and which are folders (symlinks followed).
struct DirRead {
    std::optional<std::string> error;     // why it cannot be listed
    std::vector<std::string> subfolders;  // entry names, sorted
    friend bool operator==(const DirRead&, const DirRead&) = default;
};

class FileSnapshot {
public:
    // An open snapshot: whatever is asked is read from the disk then, and kept. For the loader
    // of `postern check` and of tests, and for take_file_snapshot itself.
    [[nodiscard]] static std::shared_ptr<FileSnapshot> reading(std::filesystem::path config_file);

    FileSnapshot(const FileSnapshot&) = delete;
    FileSnapshot& operator=(const FileSnapshot&) = delete;
    FileSnapshot(FileSnapshot&&) = delete;
    FileSnapshot& operator=(FileSnapshot&&) = delete;
    // Wipes the bytes it holds: private keys should not outlive the snapshot in freed memory.
    ~FileSnapshot();

    // The config file, absolute; file(config_file()) is its text.
    [[nodiscard]] const std::filesystem::path& config_file() const noexcept { return config_; }
    [[nodiscard]] const FileRead& file(const std::filesystem::path& path) const;
    [[nodiscard]] const DirRead& dir(const std::filesystem::path& path) const;
    [[nodiscard]] std::size_t file_count() const;

    // From now on nothing more is read: what is not held reads as unreadable.
    void seal();

    // A byte string for the wire, and back; nullptr for bytes that are not one (sealed).
    [[nodiscard]] std::string encode() const;
    [[nodiscard]] static std::shared_ptr<const FileSnapshot> decode(std::string_view bytes);

    // Overwrites `bytes` (an encode() result, or a received copy) with zeros.
    static void wipe(std::string& bytes) noexcept;

private:
    struct Token {};

public:
    FileSnapshot(Token /*private*/, std::filesystem::path config_file, bool reading)
        : config_(std::move(config_file)), reading_(reading) {}

private:
    std::filesystem::path config_;
    mutable std::mutex mutex_;
    bool reading_;
    mutable std::size_t total_bytes_ = 0;
    mutable std::map<std::filesystem::path, FileRead> files_;
    mutable std::map<std::filesystem::path, DirRead> dirs_;
};

// The config at `config_file` (made absolute) and everything it names, read now, sealed.
// Never fails: what cannot be read is recorded with the reason, for the loader to report.
[[nodiscard]] std::shared_ptr<const FileSnapshot> take_file_snapshot(
    const std::filesystem::path& config_file);

// `path` made absolute against the working folder, as the loader names the config file.
[[nodiscard]] std::filesystem::path absolute_config_path(const std::filesystem::path& path);

}  // namespace postern::conf
