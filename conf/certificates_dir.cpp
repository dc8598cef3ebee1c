#include "conf/certificates_dir.hpp"

#include <filesystem>
#include <string>

namespace postern::conf {

namespace {

namespace fs = std::filesystem;

class Scanner {
public:
    Scanner(const Config& config, const FileSnapshot& files) : config_(config), files_(files) {}

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
    const FileSnapshot& files_;
    FolderScan scan_;
};

FolderScan Scanner::run() {
    const fs::path& dir = config_.tls.certificates_dir;
    const DirRead& listing = files_.dir(dir);
    if (listing.error) {
        error("cannot read directory \"" + dir.string() + "\": " + *listing.error);
        return std::move(scan_);
    }
    for (const std::string& name : listing.subfolders) {
        add_folder(dir / name);
    }
    return std::move(scan_);
}

void Scanner::add_folder(const fs::path& folder) {
    const fs::path cert = folder / kFolderCertFile;
    const fs::path key = folder / kFolderKeyFile;
    // A dangling symlink is still "there", and then reported as unreadable.
    const bool has_cert = files_.file(cert).exists;
    const bool has_key = files_.file(key).exists;
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
    const FileRead& read = files_.file(file);
    if (read.bytes) {
        return true;
    }
    std::string message = "cannot read \"" + file.string() + "\": " + read.error;
    if (read.is_symlink) {
        message += " (a symlink to \"" + read.link_target + "\")";
    }
    error(std::move(message));
    return false;
}

}  // namespace

FolderScan scan_certificates_dir(const Config& config, const FileSnapshot& files) {
    if (config.tls.certificates_dir.empty()) {
        return {};
    }
    return Scanner{config, files}.run();
}

FolderScan scan_certificates_dir(const Config& config) {
    return scan_certificates_dir(config, *FileSnapshot::reading(config.file));
}

}  // namespace postern::conf
