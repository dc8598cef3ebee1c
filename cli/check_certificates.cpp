#include "cli/check_certificates.hpp"

#include <algorithm>
#include <ostream>

namespace postern::cli {
namespace {

void sort_unique(std::vector<std::uint16_t>& ports) {
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
}

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) {
        out += out.empty() ? name : ", " + name;
    }
    return out;
}

std::string days_text(std::int64_t days) {
    if (days < 0) {
        return "EXPIRED";
    }
    return std::to_string(days) + (days == 1 ? " day left" : " days left");
}

}  // namespace

std::vector<std::uint16_t> tlsa_ports(const conf::Config& config) {
    std::vector<std::uint16_t> smtp;
    std::vector<std::uint16_t> others;
    for (const conf::ListenerSpec& l : config.listeners) {
        (l.protocol == conf::Protocol::Smtp ? smtp : others).push_back(l.listen.port);
    }
    sort_unique(smtp);
    sort_unique(others);
    std::erase_if(others, [&](std::uint16_t port) {
        return std::binary_search(smtp.begin(), smtp.end(), port);
    });
    smtp.insert(smtp.end(), others.begin(), others.end());
    return smtp;
}

std::vector<std::string> tlsa_records(const std::string& name,
                                      const std::vector<std::uint16_t>& ports,
                                      const std::string& tlsa) {
    std::vector<std::string> out;
    if (name.starts_with("*.") || tlsa.empty()) {
        return out;
    }
    for (const std::uint16_t port : ports) {
        std::string record = "_" + std::to_string(port);
        record.append("._tcp.").append(name).append(". IN TLSA 3 1 1 ").append(tlsa);
        out.push_back(std::move(record));
    }
    return out;
}

void print_certificate_report(const std::vector<tls::CertificateReport>& report,
                              const conf::Config& config, std::ostream& out) {
    const std::vector<std::uint16_t> ports = tlsa_ports(config);
    for (const tls::CertificateReport& r : report) {
        out << "\ncertificate " << r.file << '\n'
            << "  names:       " << join(r.names) << '\n'
            << "  key:         " << r.key_type << '\n'
            << "  not after:   " << r.not_after << " (" << r.not_after_unix << "), "
            << days_text(r.days_left) << '\n'
            << "  chain:       " << tls::to_string(r.chain)
            << (r.leaf_first ? "" : ", the leaf is not first in the file") << '\n'
            << "  TLSA 3 1 1:  " << r.tlsa << '\n';
        for (const std::string& name : r.names) {
            if (name.starts_with("*.")) {
                out << "  (" << name << ": publish a TLSA record under each host name it serves)\n";
            }
            for (const std::string& record : tlsa_records(name, ports, r.tlsa)) {
                out << "  " << record << '\n';
            }
        }
    }
}

}  // namespace postern::cli
