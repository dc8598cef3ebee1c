#pragma once
// TOML -> Config. Collects every error it finds (unknown keys, wrong types, bad values, missing
// or unreadable files, duplicate listen addresses, unknown backend names) instead of stopping at
// the first. What needs OpenSSL (does the key match, is default_certificate covered) is checked
// by tls::CertStore::build, which reports in the same ConfigError form.

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "conf/file_snapshot.hpp"

#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

namespace postern::conf {

struct LoadResult {
    std::optional<Config> config;  // set only when errors is empty
    std::vector<ConfigError> errors;
};

// Reads the file and what it names from the disk (an open FileSnapshot).
[[nodiscard]] LoadResult load_config(const std::filesystem::path& file);

// From a snapshot (conf/file_snapshot.hpp): its config file's text, and every file check
// answered by it, never by the disk when it is sealed.
[[nodiscard]] LoadResult load_config(const FileSnapshot& files);

// Same, from text; `file` names the source in errors and anchors relative paths (the files it
// names are read from the disk).
[[nodiscard]] LoadResult load_config_text(std::string_view text, const std::filesystem::path& file);

}  // namespace postern::conf
