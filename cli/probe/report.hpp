#pragma once
// What `postern probe` learned about a server, the verdict it draws (and its exit code), and
// the two ways it is printed: a few aligned lines for people, or one JSON object (--json).
// Pure: cli/probe/probe.cpp fills a ProbeReport from the socket and OpenSSL; this file only reads it.
// Every server-supplied string (subjects, names, capabilities, quoted replies) is escaped on the
// way out: display_text() for the text form, JSON string escaping for --json.

#include "cli/probe/dialogue.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::cli::probe {

// The exit codes, in the order the checks run; the first failing check decides.
enum class Verdict : std::uint8_t {
    Ok = 0,               // the name matches and the chain verifies
    Error = 1,            // usage, connection or protocol error (before or after TLS)
    HandshakeFailed = 2,  // no TLS session
    NameMismatch = 3,     // the leaf does not cover the name checked
    Unverified = 4,       // the chain does not verify against the trust store
};

[[nodiscard]] constexpr int exit_code(Verdict v) noexcept {
    return static_cast<int>(v);
}

// One certificate the server sent, leaf first.
struct CertSummary {
    std::string subject;  // RFC 2253 one-line form, most specific first: "CN=mail.a.test,O=A"
    std::string issuer;
    std::vector<std::string> dns_names;     // subjectAltName dNSName entries
    std::vector<std::string> ip_addresses;  // subjectAltName iPAddress entries
    std::string not_after;                  // "2027-02-20 12:00:00 UTC"; empty if unreadable
    std::string not_after_iso;              // "2027-02-20T12:00:00Z"
    std::int64_t days_left = 0;             // whole days until not_after, negative once expired
};

struct ProbeReport {
    std::string target;   // HOST:PORT as given
    std::string address;  // the address connected to, "127.0.0.1:993"; empty if none was
    std::optional<Protocol> starttls;
    std::optional<Protocol> protocol;  // the STARTTLS one, or learned from the TLS greeting
    std::string servername;            // SNI sent; empty when none (IP literal target)

    bool tls_attempted = false;
    std::string handshake_error;  // empty when the handshake succeeded
    std::string tls_version;      // "TLSv1.3"
    std::string cipher;           // OpenSSL's name: "TLS_AES_256_GCM_SHA384"
    std::vector<CertSummary> chain;

    std::string name_checked;  // --servername, or HOST; an IP literal is checked as an address
    bool name_matches = false;
    bool verified = false;
    std::string verify_result;  // X509_verify_cert_error_string(): "ok", "certificate has expired"
    std::string trust;          // "the system store" or "--cafile FILE"

    bool capabilities_read = false;
    std::vector<std::string> capabilities;
    std::string capabilities_note;

    std::string error;  // connection or protocol failure, before or after TLS
};

struct Outcome {
    Verdict verdict = Verdict::Ok;
    std::string reason;  // "ok", or a sentence naming the first failing check
};

// Decides in the order: connection/pre-TLS error, handshake, name, chain, post-TLS error.
[[nodiscard]] Outcome judge(const ProbeReport& report);

// Text safe for a terminal: printable ASCII and well-formed UTF-8 as they are; control bytes,
// DEL, C1 controls, bidirectional overrides, malformed UTF-8 and '\' escaped as \xNN (or \\).
[[nodiscard]] std::string display_text(std::string_view text);

// For CertSummary::days_left (floored, so -1 means expired within the last day): "31 days
// left", "1 day left", "less than a day left", "EXPIRED less than a day ago", "EXPIRED 3 days
// ago".
[[nodiscard]] std::string days_left_text(std::int64_t days);

// The report as aligned "label  value" lines ending in "result  ...", each ending in '\n'.
[[nodiscard]] std::string format_text(const ProbeReport& report, const Outcome& outcome);

// The report as one JSON object and a newline. Keys: target, address, starttls, protocol,
// servername, tls {version, cipher} | null, handshake_error, chain [{subject, issuer, dns_names,
// ip_addresses, not_after, days_left}], name {checked, matches} | null, verify {ok, result,
// trust} | null, capabilities [..] | null, capabilities_note, ok, exit_code, error. Malformed
// UTF-8 in server text becomes U+FFFD.
[[nodiscard]] std::string format_json(const ProbeReport& report, const Outcome& outcome);

}  // namespace postern::cli::probe
