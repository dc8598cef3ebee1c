#include "cli/probe/probe.hpp"

#include "cli/probe/connection.hpp"
#include "cli/probe/dialogue.hpp"
#include "cli/probe/report.hpp"
#include "conf/parse_value.hpp"
#include "proxy/endpoint.hpp"
#include "tls/client_context.hpp"
#include "tls/server_name.hpp"
#include "tls/x509_text.hpp"

#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <charconv>
#include <chrono>
#include <csignal>
#include <ctime>
#include <ostream>
#include <system_error>

namespace postern::cli {

namespace {
using proxy::machine_fqdn;

using probe::CertSummary;
using probe::Connection;
using probe::Dialogue;
using probe::ProbeReport;
using probe::Protocol;
using probe::Then;

// An IPv4 or IPv6 address, without an IPv6 "%zone" (which certificates cannot name).
std::optional<std::string> ip_literal(const std::string& host) {
    const std::string address = host.substr(0, host.find('%'));
    in6_addr v6{};
    in_addr v4{};
    if ((address.size() == host.size() && inet_pton(AF_INET, host.c_str(), &v4) == 1) ||
        inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
        return address;
    }
    return std::nullopt;
}

struct Settings {
    conf::Endpoint endpoint;
    std::optional<Protocol> starttls;
    std::string sni;           // empty: send none
    std::string name_checked;  // host name or IP literal
    bool name_is_ip = false;
    std::chrono::milliseconds timeout{10'000};
};

// Checks the options; returns the usage error, or empty with `s` filled.
std::string settle(const ProbeOptions& o, Settings& s) {
    auto endpoint = conf::parse_endpoint(o.target);
    if (!endpoint.value) {
        return endpoint.error;
    }
    s.endpoint = *endpoint.value;
    if (!o.starttls.empty()) {
        s.starttls = probe::protocol_named(o.starttls);
        if (!s.starttls) {
            return "--starttls: \"" + o.starttls + "\" is not smtp, imap or pop3";
        }
    }
    auto timeout = conf::parse_duration(o.timeout);
    if (!timeout.value) {
        std::int64_t seconds = 0;
        const auto* end = o.timeout.data() + o.timeout.size();
        if (auto [ptr, ec] = std::from_chars(o.timeout.data(), end, seconds);
            ec == std::errc{} && ptr == end) {
            timeout = conf::duration_from_seconds(seconds);
        }
    }
    if (!timeout.value) {
        return "--timeout: " + timeout.error;
    }
    s.timeout = *timeout.value;

    const std::string& name = o.servername.empty() ? s.endpoint.host : o.servername;
    if (auto ip = ip_literal(name)) {
        // RFC 6066 §3: no SNI for an address; the certificate is checked for an iPAddress SAN.
        s.name_checked = *ip;
        s.name_is_ip = true;
        return {};
    }
    auto normalized = tls::normalize_host_name(name);
    if (!normalized) {
        return (o.servername.empty() ? "\"" : "--servername: \"") + name +
               "\" is not a host name or IP address";
    }
    s.sni = *normalized;
    s.name_checked = *normalized;
    return {};
}

CertSummary summarize(const X509* cert) {
    CertSummary out;
    out.subject = tls::subject_text(cert);
    out.issuer = tls::issuer_text(cert);
    tls::SubjectAltNames sans = tls::subject_alt_names(cert);
    out.dns_names = std::move(sans.dns);
    out.ip_addresses = std::move(sans.ip);
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    out.not_after = tls::time_text(not_after);
    out.not_after_iso = tls::time_iso8601(not_after);
    out.days_left = tls::days_left(not_after, std::time(nullptr)).value_or(0);
    return out;
}

// TLS version, cipher, chain, name match and verify result of the finished handshake.
void record_session(SSL* ssl, const Settings& s, ProbeReport& report) {
    report.tls_version = SSL_get_version(ssl);
    report.cipher = SSL_get_cipher_name(ssl);
    if (const STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl)) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            report.chain.push_back(summarize(sk_X509_value(chain, i)));
        }
    }
    X509* leaf = SSL_get0_peer_certificate(ssl);
    if (leaf != nullptr) {
        report.name_matches =
            s.name_is_ip ? X509_check_ip_asc(leaf, s.name_checked.c_str(), 0) == 1
                         : X509_check_host(leaf, s.name_checked.data(), s.name_checked.size(),
                                           X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
    }
    const long result = SSL_get_verify_result(ssl);
    report.verified = leaf != nullptr && result == X509_V_OK;
    report.verify_result =
        leaf == nullptr ? "no certificate" : X509_verify_cert_error_string(result);
}

std::unique_ptr<tls::ClientContext> client_context(const ProbeOptions& o, std::string& error) {
    auto ctx = tls::ClientContext::create(error);
    if (ctx && !ctx->load_trust(o.cafile, error)) {
        error = (o.cafile.empty() ? "cannot load the system trust store: "
                                  : "--cafile " + o.cafile + ": ") +
                error;
        return nullptr;
    }
    return ctx;
}

// Runs the dialogue and the handshake, filling the report as far as it gets.
void talk(const Settings& s, const tls::ClientContext& ctx, ProbeReport& report) {
    auto conn = probe::connect_to(s.endpoint, s.timeout, report.address, report.error);
    if (!conn) {
        return;
    }
    Dialogue dialogue{s.starttls, machine_fqdn()};
    probe::Step step = dialogue.start();
    std::string line;
    bool done = false;
    while (!done) {
        if (!step.send.empty() && !conn->write(step.send, report.error)) {
            break;
        }
        switch (step.then) {
            case Then::Read:
                switch (conn->read_line(line, report.error)) {
                    case Connection::Read::Line:
                        step = dialogue.on_line(line);
                        break;
                    case Connection::Read::Eof:
                        step = dialogue.on_eof();
                        break;
                    case Connection::Read::Error:
                        done = true;
                        break;
                }
                break;
            case Then::StartTls:
                if (conn->buffered() != 0) {
                    // Whatever arrives before the handshake is not protected by it (the client-side
                    // twin of CVE-2011-0411): a server that does this is broken or attacked.
                    report.error = "the server sent " + std::to_string(conn->buffered()) +
                                   " bytes after its STARTTLS reply, before TLS; refusing them";
                    done = true;
                    break;
                }
                report.tls_attempted = true;
                if (!conn->handshake(ctx, s.sni, report.handshake_error)) {
                    if (report.handshake_error.empty()) {
                        report.handshake_error = "unknown error";
                    }
                    done = true;
                    break;
                }
                record_session(conn->ssl(), s, report);
                step = dialogue.on_tls_ready();
                break;
            case Then::Close:
                done = true;
                break;
            case Then::Fail:
                report.error = step.error;
                done = true;
                break;
        }
    }
    report.protocol = dialogue.protocol();
    report.capabilities_read = dialogue.capabilities_read();
    report.capabilities = dialogue.capabilities();
    report.capabilities_note = dialogue.capabilities_note();
    conn->shutdown();
}

}  // namespace

int run_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err) {
    Settings settings;
    if (const auto usage = settle(options, settings); !usage.empty()) {
        err << "postern probe: " << probe::display_text(usage) << '\n';
        return probe::exit_code(probe::Verdict::Error);
    }
    std::string error;
    const auto ctx = client_context(options, error);
    if (!ctx) {
        err << "postern probe: " << probe::display_text(error) << '\n';
        return probe::exit_code(probe::Verdict::Error);
    }
    // A server that resets the connection must not kill the probe while OpenSSL writes to it.
    (void)std::signal(SIGPIPE, SIG_IGN);

    ProbeReport report;
    report.target = options.target;
    report.starttls = settings.starttls;
    report.servername = settings.sni;
    report.name_checked = settings.name_checked;
    report.trust = options.cafile.empty() ? "the system store" : "--cafile " + options.cafile;
    talk(settings, *ctx, report);

    const auto outcome = probe::judge(report);
    out << (options.json ? probe::format_json(report, outcome)
                         : probe::format_text(report, outcome));
    out.flush();
    if (outcome.verdict != probe::Verdict::Ok) {
        err << "postern probe: " << probe::display_text(outcome.reason) << '\n';
    }
    return probe::exit_code(outcome.verdict);
}

}  // namespace postern::cli
