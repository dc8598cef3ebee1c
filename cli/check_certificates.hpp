#pragma once
// The certificate part of `postern check`: per loaded certificate the tls/certificate_report.hpp
// data as text, with one ready-to-paste DANE TLSA record (RFC 6698, RFC 7672 §3) per DNS name
// and listener port, SMTP ports first: "_25._tcp.mx.example.net. IN TLSA 3 1 1 <hex>".

#include "conf/config.hpp"
#include "tls/certificate_report.hpp"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace postern::cli {

// The listeners' ports, each once: SMTP ones ascending, then the others ascending.
[[nodiscard]] std::vector<std::uint16_t> tlsa_ports(const conf::Config& config);

// "_<port>._tcp.<name>. IN TLSA 3 1 1 <hex>" for each of `ports`; none for a wildcard name (a
// TLSA owner name cannot be one: each host it serves needs its own record).
[[nodiscard]] std::vector<std::string> tlsa_records(const std::string& name,
                                                    const std::vector<std::uint16_t>& ports,
                                                    const std::string& tlsa);

void print_certificate_report(const std::vector<tls::CertificateReport>& report,
                              const conf::Config& config, std::ostream& out);

}  // namespace postern::cli
