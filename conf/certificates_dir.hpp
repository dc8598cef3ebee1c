#pragma once
// tls.certificates_dir: a folder laid out like certbot's /etc/letsencrypt/live, where each
// subfolder holding fullchain.pem and privkey.pem (usually symlinks into ../../archive/<name>/,
// followed) is one certificate. Subfolders with neither file and anything that is not a folder
// (certbot's README) are skipped; a subfolder with only one of the two, or with a file that
// cannot be read, is an error naming it. Only the file snapshot is looked at
// (conf/file_snapshot.hpp); the PEM content is tls::load_certificate's business.
// tls::CertStore::build scans on every build, so a rebuilt store sees renewed and added
// certificates without the config changing.

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "conf/file_snapshot.hpp"

#include <string_view>
#include <vector>

namespace postern::conf {

inline constexpr std::string_view kFolderCertFile = "fullchain.pem";
inline constexpr std::string_view kFolderKeyFile = "privkey.pem";
inline constexpr std::string_view kCertificatesDirKey = "tls.certificates_dir";

struct FolderScan {
    // One spec per certificate subfolder, sorted by subfolder name; origin Folder, keyed
    // "tls.certificates_dir" at the key's position in the config file.
    std::vector<CertificateSpec> certificates;
    std::vector<ConfigError> errors;  // keyed "tls.certificates_dir", naming folder or file
};

// Empty when config.tls.certificates_dir is empty. An unreadable folder is one error.
[[nodiscard]] FolderScan scan_certificates_dir(const Config& config, const FileSnapshot& files);

// Same, reading the disk now (an open FileSnapshot).
[[nodiscard]] FolderScan scan_certificates_dir(const Config& config);

}  // namespace postern::conf
