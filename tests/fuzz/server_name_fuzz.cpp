// libFuzzer target for tls/server_name.hpp, which reads the server_name extension straight out
// of an untrusted ClientHello. The input is used twice: as the extension body, and as a name.
// Invariants, besides "no crash, out-of-bounds read or UB": a host_name found lies inside the
// input; a normalized name is lower case, has no trailing dot, is a host name by
// conf::is_dns_name, and normalizes to itself; a normalized SAN wildcard is "*." and a
// normalized host with at least two labels; a wildcard key is a suffix of its host, starting
// with '.', that holds at least one more label.

#include "conf/parse_value.hpp"
#include "tls/server_name.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

namespace {

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(
            std::fprintf(stderr, "server_name_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

void check_host(const std::string& host) {
    require(!host.empty() && host.back() != '.');
    require(postern::conf::is_dns_name(host));
    for (const char c : host) {
        require(!(c >= 'A' && c <= 'Z'));
    }
    require(postern::tls::normalize_host_name(host) == host);
    const std::string_view key = postern::tls::wildcard_key(host);
    if (!key.empty()) {
        require(key.front() == '.' && key.size() > 1 && key.size() < host.size());
        require(std::string_view{host}.ends_with(key));
    }
}

void check_name(std::string_view name) {
    if (const auto host = postern::tls::normalize_host_name(name)) {
        check_host(*host);
    }
    if (const auto san = postern::tls::normalize_san_name(name)) {
        if (san->starts_with("*.")) {
            const std::string parent = san->substr(2);
            check_host(parent);
            require(parent.find('.') != std::string::npos);
        } else {
            check_host(*san);
        }
        require(postern::tls::normalize_san_name(*san) == san);
    }
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> ext{data, size};
    if (const auto host = postern::tls::parse_server_name_ext(ext)) {
        const auto* begin = reinterpret_cast<const char*>(data);
        require(host->data() >= begin && host->data() + host->size() <= begin + size);
        check_name(*host);
    }
    check_name({reinterpret_cast<const char*>(data), size});
    return 0;
}
