#include "cli/probe/report.hpp"

#include <nlohmann/json.hpp>
#include <utf8.h>

namespace postern::cli::probe {

namespace {

using Json = nlohmann::ordered_json;

constexpr std::size_t kLabelWidth = 14;

void escape_byte(std::string& out, unsigned char byte) {
    constexpr std::string_view kHex = "0123456789abcdef";
    out += "\\x";
    out += kHex[byte >> 4U];
    out += kHex[byte & 0x0FU];
}

// Code points that move the cursor or reorder what follows on a terminal.
bool is_invisible_control(char32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) ||      // C1 controls
           cp == 0x061C ||                    // Arabic letter mark
           cp == 0x200E || cp == 0x200F ||    // LRM, RLM
           cp == 0x2028 || cp == 0x2029 ||    // line and paragraph separators
           (cp >= 0x202A && cp <= 0x202E) ||  // embeddings and overrides
           (cp >= 0x2066 && cp <= 0x2069);    // isolates
}

// `escape`: display_text() each item (for the text form; reasons are escaped when printed).
std::string joined(const std::vector<std::string>& items, std::string_view separator,
                   bool escape = true) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += separator;
        }
        out += escape ? display_text(item) : item;
    }
    return out;
}

void line(std::string& out, std::string_view label, std::string_view value) {
    out += label;
    out.append(label.size() < kLabelWidth ? kLabelWidth - label.size() : 1, ' ');
    out += value;
    out += '\n';
}

std::vector<std::string> leaf_names(const ProbeReport& report) {
    if (report.chain.empty()) {
        return {};
    }
    std::vector<std::string> names = report.chain.front().dns_names;
    for (const auto& ip : report.chain.front().ip_addresses) {
        names.push_back("IP:" + ip);
    }
    return names;
}

Json nullable(const std::string& s) {
    return s.empty() ? Json(nullptr) : Json(s);
}

}  // namespace

std::string display_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto it = text.begin();
    while (it != text.end()) {
        // [it, bad) is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code
        // points beyond U+10FFFF); the byte at `bad` starts a malformed sequence.
        const auto bad = utf8::find_invalid(it, text.end());
        while (it != bad) {
            const auto start = it;
            const auto cp = static_cast<char32_t>(utf8::unchecked::next(it));
            if (cp == '\\') {
                out += "\\\\";
            } else if (cp >= 0x20 && cp < 0x7F) {
                out += static_cast<char>(cp);
            } else if (cp < 0x80 || is_invisible_control(cp)) {
                for (auto byte = start; byte != it; ++byte) {
                    escape_byte(out, static_cast<unsigned char>(*byte));
                }
            } else {
                out.append(start, it);
            }
        }
        if (bad != text.end()) {
            escape_byte(out, static_cast<unsigned char>(*bad));
            ++it;
        }
    }
    return out;
}

std::string days_left_text(std::int64_t days) {
    if (days == 0) {
        return "less than a day left";
    }
    if (days > 0) {
        return std::to_string(days) + (days == 1 ? " day left" : " days left");
    }
    if (days == -1) {
        return "EXPIRED less than a day ago";
    }
    return "EXPIRED " + std::to_string(-days) + " days ago";
}

Outcome judge(const ProbeReport& report) {
    if (!report.tls_attempted) {
        return {Verdict::Error, report.error.empty() ? "no connection" : report.error};
    }
    if (!report.handshake_error.empty()) {
        return {Verdict::HandshakeFailed, "TLS handshake failed: " + report.handshake_error};
    }
    if (report.chain.empty()) {
        return {Verdict::NameMismatch, "the server sent no certificate"};
    }
    if (!report.name_matches) {
        const auto names = leaf_names(report);
        return {Verdict::NameMismatch,
                "name mismatch: the certificate does not cover " + report.name_checked +
                    " (it covers: " + (names.empty() ? "no names" : joined(names, ", ", false)) +
                    ")"};
    }
    if (!report.verified) {
        return {Verdict::Unverified,
                "the chain does not verify against " + report.trust + ": " + report.verify_result};
    }
    if (!report.error.empty()) {
        return {Verdict::Error, report.error};
    }
    return {Verdict::Ok, "ok"};
}

std::string format_text(const ProbeReport& report, const Outcome& outcome) {
    std::string out;
    std::string server = display_text(report.target);
    if (!report.address.empty() && report.address != report.target) {
        server += " (" + report.address + ")";
    }
    if (report.starttls) {
        server += ", STARTTLS " + std::string{to_string(*report.starttls)};
    } else {
        server += ", implicit TLS";
        if (report.protocol) {
            server += ", " + std::string{to_string(*report.protocol)};
        }
    }
    line(out, "server", server);
    if (report.tls_attempted) {
        line(out, "sni",
             report.servername.empty() ? "(none: the name checked is an IP address)"
                                       : display_text(report.servername));
    }
    if (report.tls_attempted && report.handshake_error.empty()) {
        line(out, "tls", report.tls_version + ", " + report.cipher);
        for (std::size_t i = 0; i < report.chain.size(); ++i) {
            const auto& cert = report.chain[i];
            line(out, "certificate " + std::to_string(i + 1), display_text(cert.subject));
            std::vector<std::string> names = cert.dns_names;
            for (const auto& ip : cert.ip_addresses) {
                names.push_back("IP:" + ip);
            }
            if (!names.empty()) {
                line(out, "  names", joined(names, ", "));
            }
            line(out, "  issuer", display_text(cert.issuer));
            line(out, "  not after",
                 cert.not_after.empty()
                     ? std::string{"(unreadable)"}
                     : cert.not_after + " (" + days_left_text(cert.days_left) + ")");
        }
        line(out, "name",
             display_text(report.name_checked) + (report.name_matches
                                                      ? " matches the certificate"
                                                      : " does NOT match the certificate"));
        line(out, "chain",
             report.verified ? "verified against " + display_text(report.trust)
                             : "does NOT verify against " + display_text(report.trust) + ": " +
                                   report.verify_result);
        if (report.capabilities_read) {
            line(out, "capabilities",
                 report.capabilities.empty() ? display_text(report.capabilities_note)
                                             : joined(report.capabilities, ", "));
        } else {
            line(out, "capabilities", "(not read)");
        }
    }
    line(out, "result",
         outcome.verdict == Verdict::Ok
             ? std::string{"ok"}
             : "FAILED (exit " + std::to_string(exit_code(outcome.verdict)) +
                   "): " + display_text(outcome.reason));
    return out;
}

std::string format_json(const ProbeReport& report, const Outcome& outcome) {
    Json j;
    j["target"] = report.target;
    j["address"] = nullable(report.address);
    j["starttls"] = report.starttls ? Json(to_string(*report.starttls)) : Json(nullptr);
    j["protocol"] = report.protocol ? Json(to_string(*report.protocol)) : Json(nullptr);
    j["servername"] = nullable(report.servername);
    const bool handshake = report.tls_attempted && report.handshake_error.empty();
    if (handshake) {
        j["tls"] = Json{{"version", report.tls_version}, {"cipher", report.cipher}};
    } else {
        j["tls"] = nullptr;
    }
    j["handshake_error"] = nullable(report.handshake_error);
    j["chain"] = Json::array();
    for (const auto& cert : report.chain) {
        j["chain"].push_back(Json{{"subject", cert.subject},
                                  {"issuer", cert.issuer},
                                  {"dns_names", cert.dns_names},
                                  {"ip_addresses", cert.ip_addresses},
                                  {"not_after", nullable(cert.not_after_iso)},
                                  {"days_left", cert.days_left}});
    }
    if (handshake) {
        j["name"] = Json{{"checked", report.name_checked}, {"matches", report.name_matches}};
        j["verify"] = Json{
            {"ok", report.verified}, {"result", report.verify_result}, {"trust", report.trust}};
    } else {
        j["name"] = nullptr;
        j["verify"] = nullptr;
    }
    j["capabilities"] = report.capabilities_read ? Json(report.capabilities) : Json(nullptr);
    j["capabilities_note"] = nullable(report.capabilities_note);
    j["ok"] = outcome.verdict == Verdict::Ok;
    j["exit_code"] = exit_code(outcome.verdict);
    j["error"] = outcome.verdict == Verdict::Ok ? Json(nullptr) : Json(outcome.reason);
    return j.dump(2, ' ', false, Json::error_handler_t::replace) + '\n';
}

}  // namespace postern::cli::probe
