#include "cli/check.hpp"

#include "cli/check_certificates.hpp"
#include "conf/load.hpp"
#include "proxy/open_files.hpp"
#include "proxy/privileges.hpp"
#include "proxy/runtime.hpp"
#include "tls/cert_checks.hpp"
#include "tls/cert_store.hpp"
#include "tls/certificate_report.hpp"
#include "tls/x509_text.hpp"

#include <algorithm>
#include <ctime>
#include <ostream>
#include <string>
#include <vector>

namespace postern::cli {
namespace {

struct Row {
    std::string name;
    std::string file;
    std::string key;
    std::string expiry;
};

std::string pad(const std::string& s, std::size_t width) {
    return s.size() >= width ? s + "  " : s + std::string(width - s.size() + 2, ' ');
}

std::string expiry_text(const tls::Certificate& cert, std::time_t now) {
    if (cert.not_after <= now) {
        return cert.data.not_after_text() + " (EXPIRED)";
    }
    const auto days = tls::days_left(X509_get0_notAfter(cert.data.leaf.get()), now).value_or(0);
    return cert.data.not_after_text() + " (" + std::to_string(days) + " days)";
}

// Rows for names the store does not serve from this certificate say so; the warnings below
// the table say why.
std::string served_note(const tls::CertStore& store, const tls::Certificate& cert,
                        const std::string& name) {
    const tls::Certificate* served = store.served_for(name, cert.key_type);
    return served == &cert ? std::string{} : "  [not served]";
}

// Where a backend's plaintext goes: its addresses in failover order, or the program it runs.
std::string destination(const conf::BackendSpec& backend) {
    std::string out;
    if (backend.is_exec()) {
        out = "exec";
        for (const std::string& arg : backend.exec.argv) {
            out.append(" ").append(arg);
        }
        if (!backend.exec.user.empty()) {
            out.append(" (as ").append(backend.exec.user).append(")");
        }
        return out;
    }
    for (const conf::Endpoint& address : backend.addresses) {
        out.append(out.empty() ? "" : ", ").append(address.to_string());
    }
    return out;
}

void print_listeners(const conf::Config& config, std::ostream& out) {
    for (const auto& l : config.listeners) {
        out << "  " << l.listen.to_string() << "  " << conf::to_string(l.protocol) << "  "
            << conf::to_string(l.tls) << "  -> " << l.backend << '\n';
        for (const conf::Route& route : l.routes) {
            out << "      sni " << route.server_name << "  -> " << route.backend << '\n';
        }
        if (l.accept_proxy) {
            out << "      PROXY header from";
            for (const conf::Network& network : l.trusted_proxies) {
                out << ' ' << network.to_string();
            }
            out << '\n';
        }
        out << "      per client: "
            << (l.max_sessions_per_client == 0
                    ? std::string{"any number of sessions"}
                    : "at most " + std::to_string(l.max_sessions_per_client) + " sessions")
            << ", "
            << (l.max_new_per_client.off() ? std::string{"any rate"}
                                           : conf::to_string(l.max_new_per_client) + " new")
            << '\n';
    }
    out << config.backends.size() << " backend(s)\n";
    for (const auto& b : config.backends) {
        out << "  " << b.name << "  " << destination(b) << "  client address: " << b.identity()
            << '\n';
    }
}

// An MX (smtp without a TLS requirement) whose backend learns nothing about the client: the
// backend sees postern's address for every client.
std::vector<std::string> identity_warnings(const conf::Config& config) {
    std::vector<std::string> warnings;
    for (const auto& l : config.listeners) {
        if (l.protocol != conf::Protocol::Smtp || l.require_tls) {
            continue;
        }
        std::vector<std::string> names{l.backend};
        for (const conf::Route& route : l.routes) {
            if (std::find(names.begin(), names.end(), route.backend) == names.end()) {
                names.push_back(route.backend);
            }
        }
        for (const std::string& name : names) {
            const conf::BackendSpec* backend = config.find_backend(name);
            if (backend == nullptr || std::string_view{backend->identity()} != "none") {
                continue;
            }
            warnings.push_back(
                "warning: listener " + l.listen.to_string() + " (smtp, TLS not required: an MX) " +
                "passes no client address to backend " + name + ": it sees every sender as " +
                "postern's own address, so a backend that trusts that address (Postfix " +
                "mynetworks) relays for anyone, and DNSBL, SPF and fail2ban see only postern; "
                "set " +
                "send_proxy = \"v2\" or xclient = true on " + backend->key_name +
                " (README: Passing the client's address to the backend)");
        }
    }
    return warnings;
}

// server.max_sessions against this shell's open-files limit (proxy/open_files.hpp): run raises
// its soft limit to the hard one, refuses a written max_sessions that does not fit and lowers
// the default. The service's own limit (systemd's LimitNOFILE) may differ from this shell's,
// so a lowered default is a note; a written value that would stop run is a warning.
std::vector<std::string> sessions_report(const conf::Config& config, std::ostream& out) {
    const unsigned workers = proxy::worker_count(config.server.workers);
    const std::uint64_t limit = proxy::open_files_hard_limit();
    const proxy::OpenFiles files = proxy::open_files_for(config, workers);
    const proxy::SessionsFit fit = proxy::fit_max_sessions(config, workers, limit);
    out << "at most " << config.server.max_sessions << " sessions"
        << (config.server.max_sessions_set ? "" : " (default)") << " with " << workers
        << " worker(s): " << files.needed(config.server.max_sessions)
        << " open files; hard limit here (ulimit -Hn): " << limit << '\n';
    if (fit.sessions == 0) {
        return {"warning: server.max_sessions: " + fit.message +
                " (this shell's limit; postern run refuses to start under it)"};
    }
    if (!fit.message.empty()) {
        out << "note: under this shell's limit " << fit.message << '\n';
    }
    return {};
}

}  // namespace

bool has_something_to_serve(const conf::Config& config, const std::filesystem::path& config_file,
                            std::ostream& err) {
    if (!config.listeners.empty()) {
        return true;
    }
    err << config_file.string()
        << ": listener: no [[listener]] is defined, so there is nothing to serve; add one "
           "(listen, protocol, backend) for each port postern should accept\n";
    return false;
}

int check(const std::filesystem::path& config_file, std::ostream& out, std::ostream& err,
          bool json) {
    // The same snapshot `run` takes: what check reports is what run would load.
    const auto files = conf::take_file_snapshot(config_file);
    auto loaded = conf::load_config(*files);
    if (!loaded.config) {
        err << conf::format_errors(loaded.errors);
        return 1;
    }
    const conf::Config& config = *loaded.config;
    if (!has_something_to_serve(config, config_file, err)) {
        return 1;
    }
    const std::time_t now = std::time(nullptr);
    auto built = tls::CertStore::build(config, *files, now);
    if (!built.store) {
        err << conf::format_errors(built.errors);
        return 1;
    }
    const tls::CertStore& store = *built.store;
    if (json) {
        out << tls::certificates_json(store, now) << '\n';
        return 0;
    }

    std::vector<Row> rows;
    for (const auto& cert : store.certificates()) {
        for (const auto& name : cert->names) {
            rows.push_back(Row{name, cert->data.cert_file.string(), cert->data.key_description,
                               expiry_text(*cert, now) + served_note(store, *cert, name)});
        }
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        return a.name != b.name ? a.name < b.name : a.key < b.key;
    });
    Row header{"NAME", "CERTIFICATE", "KEY", "NOT AFTER"};
    std::size_t w_name = header.name.size();
    std::size_t w_file = header.file.size();
    std::size_t w_key = header.key.size();
    for (const auto& r : rows) {
        w_name = std::max(w_name, r.name.size());
        w_file = std::max(w_file, r.file.size());
        w_key = std::max(w_key, r.key.size());
    }
    rows.insert(rows.begin(), header);
    for (const auto& r : rows) {
        out << pad(r.name, w_name) << pad(r.file, w_file) << pad(r.key, w_key) << r.expiry << '\n';
    }

    // Only warnings: whatever would be an error has already stopped CertStore::build.
    const std::vector<tls::Finding> findings = tls::inspect(store, config, now, files.get());
    if (!findings.empty()) {
        out << '\n';
    }
    for (const auto& finding : findings) {
        out << tls::format_finding(finding) << '\n';
    }
    print_certificate_report(tls::certificate_report(store, now), config, out);

    out << '\n'
        << store.certificates().size() << " certificate(s), " << (rows.size() - 1)
        << " name(s); default " << config.tls.default_certificate << "; " << config.listeners.size()
        << " listener(s)\n";
    print_listeners(config, out);
    std::vector<std::string> warnings = identity_warnings(config);
    if (config.server.user.empty() && proxy::running_as_root()) {
        warnings.push_back(config_file.string() +
                           ": server.user is not set: `postern run` started as root keeps root's "
                           "privileges in the process that handles client bytes and TLS; set "
                           "server.user (e.g. \"postern\") so that only a small helper that "
                           "reads the certificate files stays root");
    }
    for (std::string& warning : sessions_report(config, out)) {
        warnings.push_back(std::move(warning));
    }
    for (const std::string& warning : warnings) {
        out << warning << '\n';
    }
    out << config_file.string() << ": OK";
    if (const std::size_t count = findings.size() + warnings.size(); count > 0) {
        out << " with " << count << " warning(s)";
    }
    out << '\n';
    return 0;
}

}  // namespace postern::cli
