#pragma once
// TOML -> Config. Collects every error it finds (unknown keys, wrong types, bad values, missing
// or unreadable files, duplicate listen addresses, unknown backend names) instead of stopping at
// the first. What needs OpenSSL (does the key match, is default_certificate covered) is checked
// by tls::CertStore::build, which reports in the same ConfigError form.

#include "conf/config.hpp"
#include "conf/errors.hpp"

#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

namespace postern::conf {

struct LoadResult {
    std::optional<Config> config;  // set only when errors is empty
    std::vector<ConfigError> errors;
};

[[nodiscard]] LoadResult load_config(const std::filesystem::path& file);

// Same, from text; `file` names the source in errors and anchors relative paths.
[[nodiscard]] LoadResult load_config_text(std::string_view text, const std::filesystem::path& file);

}  // namespace postern::conf
