#include "conf/certificates_dir.hpp"

#include "conf/files.hpp"

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>

namespace postern::conf {

namespace {

namespace fs = std::filesystem;

class Scanner {
public:
    explicit Scanner(const Config& config) : config_(config) {}

    FolderScan run();

private:
    void error(std::string message) {
        const Source at = config_.tls.certificates_dir_at;
        scan_.errors.push_back(ConfigError{config_.file.string(), at.line, at.column,
                                           std::string{kCertificatesDirKey}, std::move(message)});
    }
    void add_folder(const fs::path& folder);
    bool readable(const fs::path& file);

    const Config& config_;
    FolderScan scan_;
};

FolderScan Scanner::run() {
    const fs::path& dir = config_.tls.certificates_dir;
    std::vector<fs::path> folders;
    std::error_code ec;
    for (fs::directory_iterator it{dir, ec}; !ec && it != fs::directory_iterator{};
         it.increment(ec)) {
        std::error_code type_ec;
        // is_directory follows symlinks, so a symlinked subfolder counts too.
        if (it->is_directory(type_ec)) {
            folders.push_back(it->path());
        }
    }
    if (ec) {
        error("cannot read directory \"" + dir.string() + "\": " + ec.message());
        return std::move(scan_);
    }
    // Directory order is the file system's; certificates load, and errors print, by name.
    std::sort(folders.begin(), folders.end());
    for (const fs::path& folder : folders) {
        add_folder(folder);
    }
    return std::move(scan_);
}

void Scanner::add_folder(const fs::path& folder) {
    const fs::path cert = folder / kFolderCertFile;
    const fs::path key = folder / kFolderKeyFile;
    std::error_code ec;
    // symlink_status: a dangling symlink is still "there", and then reported as unreadable.
    const bool has_cert = fs::exists(fs::symlink_status(cert, ec));
    const bool has_key = fs::exists(fs::symlink_status(key, ec));
    if (!has_cert && !has_key) {
        return;  // not a certificate folder
    }
    if (!has_cert || !has_key) {
        error("\"" + folder.string() + "\" has " +
              std::string{has_cert ? kFolderCertFile : kFolderKeyFile} + " but no " +
              std::string{has_cert ? kFolderKeyFile : kFolderCertFile});
        return;
    }
    const bool cert_ok = readable(cert);
    const bool key_ok = readable(key);
    if (!cert_ok || !key_ok) {
        return;
    }
    CertificateSpec spec;
    spec.cert = cert;
    spec.key = key;
    spec.key_name = kCertificatesDirKey;
    spec.at = config_.tls.certificates_dir_at;
    spec.origin = CertificateOrigin::Folder;
    scan_.certificates.push_back(std::move(spec));
}

bool Scanner::readable(const fs::path& file) {
    const std::optional<std::string> reason = detail::unreadable_file_reason(file);
    if (!reason) {
        return true;
    }
    std::string message = "cannot read \"" + file.string() + "\": " + *reason;
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(file, ec))) {
        message += " (a symlink to \"" + fs::read_symlink(file, ec).string() + "\")";
    }
    error(std::move(message));
    return false;
}

}  // namespace

FolderScan scan_certificates_dir(const Config& config) {
    if (config.tls.certificates_dir.empty()) {
        return {};
    }
    return Scanner{config}.run();
}

}  // namespace postern::conf
