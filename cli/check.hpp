#pragma once
// `postern check`: validates a config as `run` would (every certificate and key loaded), then
// prints what would be served: one row per DNS name with its certificate file, key type and
// expiry ("[not served]" when another certificate wins the name), then tls::inspect's findings
// as "warning: FILE: message" lines, then per certificate its report with the DANE TLSA records
// to publish (cli/check_certificates.hpp). Nothing is bound or started.

#include "conf/config.hpp"

#include <filesystem>
#include <iosfwd>

namespace postern::cli {

// A file that loads but defines no [[listener]] would run and serve nothing: `run` and `check`
// refuse it (as HAProxy refuses a config without a listener). False, with the error written to
// `err`, for such a file.
[[nodiscard]] bool has_something_to_serve(const conf::Config& config,
                                          const std::filesystem::path& config_file,
                                          std::ostream& err);

// Returns the exit code: 0 when the config is valid, warnings or not; 1 with the errors
// written to `err`. `json`: print only tls::certificates_json (what GET /certificates serves)
// instead of the text.
[[nodiscard]] int check(const std::filesystem::path& config_file, std::ostream& out,
                        std::ostream& err, bool json = false);

}  // namespace postern::cli
