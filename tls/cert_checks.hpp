#pragma once
// What is worth an admin's attention in a built certificate store, short of an error that stops
// it being built: certificates expiring within tls.expiry_warning_days or already expired,
// two certificates of one key type for one name (only the later-expiring one is served), a
// chain whose leaf is not first or that lacks the leaf's issuer, and private keys (or PKCS#12
// bundles and their password files) that group or others may read. `postern check` prints these
// after its table; `run` logs them at startup; a reloader can log them for each new store.
// Reads the certificates and stat()s their key files; changes nothing.

#include "conf/config.hpp"
#include "conf/file_snapshot.hpp"
#include "tls/cert_store.hpp"

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

namespace postern::tls {

enum class Severity : std::uint8_t { Warning, Error };

struct Finding {
    Severity severity = Severity::Warning;
    std::string file;  // the certificate, key, bundle or config file concerned
    std::string message;
};

[[nodiscard]] const char* to_string(Severity severity) noexcept;  // "warning" | "error"

// Whether the certificate file sends the leaf's issuer after it: a self-signed leaf needs none;
// otherwise a client that only trusts the root cannot build the chain without it.
enum class ChainStatus : std::uint8_t { Complete, SelfSigned, MissingIntermediate };

// "complete" | "self-signed" | "missing intermediate"
[[nodiscard]] const char* to_string(ChainStatus status) noexcept;

[[nodiscard]] ChainStatus chain_status(const CertificateData& data);

// "warning: FILE: message", one line without its newline.
[[nodiscard]] std::string format_finding(const Finding& finding);

// Every finding for `store`, built from `config`, as of `now`: per certificate in load order,
// then per duplicated name in name order. Only warnings today: whatever would be an error has
// already stopped CertStore::build. Expiry is counted in whole days from `now`. Key file modes
// come from `files` (the snapshot the store was built from) when given, else from stat(): a
// process that gave up root (server.user) cannot stat keys in a 0700 folder.
[[nodiscard]] std::vector<Finding> inspect(const CertStore& store, const conf::Config& config,
                                           std::time_t now = std::time(nullptr),
                                           const conf::FileSnapshot* files = nullptr);

}  // namespace postern::tls
