#pragma once
// The certificate report behind `postern check` and the metrics endpoint's GET /certificates:
// per loaded certificate its names, file, key, expiry, chain status and the DANE TLSA `3 1 1`
// record data (RFC 6698 §2.1, RFC 7671 §5.1: DANE-EE, SubjectPublicKeyInfo, SHA-256), and, for
// a reload, which certificates kept their names but changed their public key: with a fresh key
// at renewal the published TLSA record no longer matches and DANE senders (RFC 7672) stop
// delivering. Pure: reads the store it is given, never the disk or the clock.

#include "tls/cert_checks.hpp"
#include "tls/cert_store.hpp"

#include <openssl/x509.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

namespace postern::tls {

// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (64 digits): what
// `openssl x509 -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256` prints.
// Empty when `cert` is null or its key cannot be encoded.
[[nodiscard]] std::string tlsa_3_1_1(const X509* cert);

struct CertificateReport {
    std::vector<std::string> names;  // as in Certificate::names, wildcards as "*.example.com"
    std::string file;                // the PEM chain or PKCS#12 bundle
    std::string key_type;            // "ECDSA P-256", "RSA 2048"
    std::string not_after;           // ISO 8601 UTC: "2027-02-20T12:00:00Z"
    std::int64_t not_after_unix = 0;
    std::int64_t days_left = 0;  // floored; negative once expired
    ChainStatus chain = ChainStatus::Complete;
    bool leaf_first = true;  // the file starts with the leaf, as it should
    std::string tlsa;        // tlsa_3_1_1 of the leaf
};

// One entry per certificate of `store`, in load order, as of `now`.
[[nodiscard]] std::vector<CertificateReport> certificate_report(const CertStore& store,
                                                                std::time_t now);

// The report as one JSON object: {"certificates": [{"names", "file", "key_type", "not_after",
// "not_after_unix", "days_left", "expired", "chain", "leaf_first", "tlsa_3_1_1"}, ...]}.
[[nodiscard]] std::string certificates_json(const CertStore& store, std::time_t now);

// A certificate whose set of names was served before a reload with another public key: the
// TLSA record published for the old key no longer matches.
struct KeyChange {
    std::vector<std::string> names;
    std::string file;  // the new certificate's
    std::string old_tlsa;
    std::string new_tlsa;
};

// For every certificate of `after` whose set of names equals that of one or more of `before`
// but whose public key none of them had: the change, naming the old key of the one served
// (same key type first, then expiring last). A key type changed at renewal, or a new ECDSA
// certificate beside the RSA one, counts too: DANE senders are served a key they cannot match.
// Certificates with new names are not changes. In `after`'s load order, each new key once.
[[nodiscard]] std::vector<KeyChange> key_changes(const CertStore& before, const CertStore& after);

// "mail.example.net: the public key changed at reload (TLSA 3 1 1 old <hex> -> new <hex>): ..."
[[nodiscard]] std::string describe(const KeyChange& change);

}  // namespace postern::tls
