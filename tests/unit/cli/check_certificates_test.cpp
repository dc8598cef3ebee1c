// cli/check_certificates: which ports get TLSA records, and the records' text.
#include "cli/check_certificates.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

using postern::cli::tlsa_ports;
using postern::cli::tlsa_records;

namespace {

postern::conf::ListenerSpec listener(std::uint16_t port, postern::conf::Protocol protocol) {
    postern::conf::ListenerSpec l;
    l.listen = postern::conf::Endpoint{"0.0.0.0", port};
    l.protocol = protocol;
    return l;
}

}  // namespace

TEST_CASE("check_certificates: SMTP ports first, then the others, each once") {
    using postern::conf::Protocol;
    postern::conf::Config config;
    config.listeners = {listener(993, Protocol::Imap),  listener(587, Protocol::Smtp),
                        listener(25, Protocol::Smtp),   listener(995, Protocol::Pop3),
                        listener(2525, Protocol::Smtp), listener(25, Protocol::Smtp)};
    CHECK(tlsa_ports(config) == std::vector<std::uint16_t>{25, 587, 2525, 993, 995});
}

TEST_CASE("check_certificates: one record per port, none for a wildcard name") {
    const std::string hex(64, 'a');
    CHECK(tlsa_records("mx.example.net", {25, 993}, hex) ==
          std::vector<std::string>{"_25._tcp.mx.example.net. IN TLSA 3 1 1 " + hex,
                                   "_993._tcp.mx.example.net. IN TLSA 3 1 1 " + hex});
    CHECK(tlsa_records("*.example.net", {25}, hex).empty());
    CHECK(tlsa_records("mx.example.net", {}, hex).empty());
}
