#include "cli/check.hpp"

#include "conf/load.hpp"
#include "tls/cert_checks.hpp"
#include "tls/cert_store.hpp"
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

int check(const std::filesystem::path& config_file, std::ostream& out, std::ostream& err) {
    auto loaded = conf::load_config(config_file);
    if (!loaded.config) {
        err << conf::format_errors(loaded.errors);
        return 1;
    }
    const conf::Config& config = *loaded.config;
    if (!has_something_to_serve(config, config_file, err)) {
        return 1;
    }
    const std::time_t now = std::time(nullptr);
    auto built = tls::CertStore::build(config, now);
    if (!built.store) {
        err << conf::format_errors(built.errors);
        return 1;
    }
    const tls::CertStore& store = *built.store;

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
    const std::vector<tls::Finding> findings = tls::inspect(store, config, now);
    if (!findings.empty()) {
        out << '\n';
    }
    for (const auto& finding : findings) {
        out << tls::format_finding(finding) << '\n';
    }

    out << '\n'
        << store.certificates().size() << " certificate(s), " << (rows.size() - 1)
        << " name(s); default " << config.tls.default_certificate << "; " << config.listeners.size()
        << " listener(s)\n";
    for (const auto& l : config.listeners) {
        out << "  " << l.listen.to_string() << "  " << conf::to_string(l.protocol) << "  "
            << conf::to_string(l.tls) << "  -> " << l.backend << '\n';
    }
    out << config_file.string() << ": OK";
    if (!findings.empty()) {
        out << " with " << findings.size() << " warning(s)";
    }
    out << '\n';
    return 0;
}

}  // namespace postern::cli
