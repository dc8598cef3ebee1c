#include "proxy/check.hpp"

#include <algorithm>
#include <ctime>
#include <ostream>
#include <string>
#include <vector>

#include "conf/load.hpp"
#include "tls/cert_store.hpp"

namespace postern::proxy {
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

std::string expiry_text(const tls::Certificate& cert) {
    const auto days = (cert.not_after - std::time(nullptr)) / (24 * 3600);
    if (cert.not_after < std::time(nullptr)) {
        return cert.not_after_text + " (EXPIRED)";
    }
    return cert.not_after_text + " (" + std::to_string(days) + " days)";
}

}  // namespace

int check(const std::filesystem::path& config_file, std::ostream& out, std::ostream& err) {
    auto loaded = conf::load_config(config_file);
    if (!loaded.config) {
        err << conf::format_errors(loaded.errors);
        return 1;
    }
    const conf::Config& config = *loaded.config;
    auto built = tls::CertStore::build(config);
    if (!built.store) {
        err << conf::format_errors(built.errors);
        return 1;
    }

    std::vector<Row> rows;
    for (const auto& cert : built.store->certificates()) {
        for (const auto& name : cert->names) {
            rows.push_back(Row{name, cert->cert_file.string(), cert->key_description,
                               expiry_text(*cert)});
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
        out << pad(r.name, w_name) << pad(r.file, w_file) << pad(r.key, w_key) << r.expiry
            << '\n';
    }
    out << '\n' << config.certificates.size() << " certificate(s), " << (rows.size() - 1)
        << " name(s); default " << config.tls.default_certificate << "; "
        << config.listeners.size() << " listener(s)\n";
    for (const auto& l : config.listeners) {
        out << "  " << l.listen.to_string() << "  " << conf::to_string(l.protocol) << "  "
            << conf::to_string(l.tls) << "  -> " << l.backend << '\n';
    }
    out << config_file.string() << ": OK\n";
    return 0;
}

}  // namespace postern::proxy
