#pragma once
// What a certificate says, written the same way by `postern check`, `postern probe` and the
// daemon's warnings: distinguished names in RFC 2253 form (most specific first,
// "CN=mail.a.test,O=A", UTF-8 kept as it is; callers escape it for a terminal), the
// subjectAltName entries as written, and times as "2027-02-20 12:00:00 UTC" or ISO 8601
// "2027-02-20T12:00:00Z". Only reads the X509 it is given.

#include <openssl/x509.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace postern::tls {

// RFC 2253 text of a name; empty when `name` is null or cannot be printed.
[[nodiscard]] std::string name_text(const X509_NAME* name);
[[nodiscard]] std::string subject_text(const X509* cert);
[[nodiscard]] std::string issuer_text(const X509* cert);

// The subjectAltName extension's dNSName and iPAddress entries, in certificate order. DNS names
// are as written (not normalized); addresses as "192.0.2.1" or "2001:db8::1".
struct SubjectAltNames {
    bool present = false;  // the certificate has the extension at all
    std::vector<std::string> dns;
    std::vector<std::string> ip;
};
[[nodiscard]] SubjectAltNames subject_alt_names(const X509* cert);

// The subject's first commonName as written; nullopt when there is none.
[[nodiscard]] std::optional<std::string> common_name(const X509* cert);

// "2027-02-20 12:00:00 UTC"; empty when `time` is null or malformed.
[[nodiscard]] std::string time_text(const ASN1_TIME* time);

// "2027-02-20T12:00:00Z"; empty when `time` is null or malformed.
[[nodiscard]] std::string time_iso8601(const ASN1_TIME* time);

[[nodiscard]] std::optional<std::time_t> to_time_t(const ASN1_TIME* time);

// Whole days from `now` until `time`, floored, so that a certificate expired an hour ago has
// -1 days left, not 0. nullopt when `time` is null or malformed.
[[nodiscard]] std::optional<std::int64_t> days_left(const ASN1_TIME* time, std::time_t now);

}  // namespace postern::tls
