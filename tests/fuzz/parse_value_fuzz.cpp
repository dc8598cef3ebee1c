// libFuzzer target for conf/parse_value.hpp, the config grammar TOML has no type for. The
// input is read as an endpoint, a duration, a DNS name and (its first 8 bytes) a number of
// seconds. Invariants, besides "no crash or UB": every outcome holds a value or an error,
// never both; an accepted endpoint has a port and, written back with Endpoint::to_string(),
// parses to the same value; an accepted duration is within (0, kMaxDuration] and "<N>ms"
// parses to it again; a DNS name is an endpoint host; a network (trusted_proxies) and a route
// name written back parse to themselves.

#include "conf/parse_value.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using postern::conf::Parsed;

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(
            std::fprintf(stderr, "parse_value_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

template <class T>
void require_one_of(const Parsed<T>& parsed) {
    require(parsed.value.has_value() == parsed.error.empty());
}

void check_duration(const Parsed<std::chrono::milliseconds>& parsed) {
    require_one_of(parsed);
    if (!parsed.value) {
        return;
    }
    const std::chrono::milliseconds ms = *parsed.value;
    require(ms.count() > 0 && ms <= postern::conf::kMaxDuration);
    const auto again = postern::conf::parse_duration(std::to_string(ms.count()) + "ms");
    require(again.value == ms);
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text{reinterpret_cast<const char*>(data), size};

    const auto endpoint = postern::conf::parse_endpoint(text);
    require_one_of(endpoint);
    if (endpoint.value) {
        require(endpoint.value->port != 0 && !endpoint.value->host.empty());
        const auto again = postern::conf::parse_endpoint(endpoint.value->to_string());
        require(again.value && again.value->host == endpoint.value->host &&
                again.value->port == endpoint.value->port);
    }

    check_duration(postern::conf::parse_duration(text));

    std::int64_t seconds = 0;
    std::memcpy(&seconds, data, size < sizeof(seconds) ? size : sizeof(seconds));
    check_duration(postern::conf::duration_from_seconds(seconds));

    if (postern::conf::is_dns_name(text)) {
        const auto as_host = postern::conf::parse_endpoint(std::string{text} + ":25");
        require(as_host.value && as_host.value->host == text);
    }

    // A network written back parses to itself and contains its own address.
    const auto network = postern::conf::parse_network(text);
    require_one_of(network);
    if (network.value) {
        const auto again = postern::conf::parse_network(network.value->to_string());
        require(again.value && again.value->bytes == network.value->bytes &&
                again.value->prefix == network.value->prefix);
        require(network.value->contains(network.value->family, network.value->bytes.data()));
    }

    // A route name is its own normal form.
    if (const auto route = postern::conf::route_name(text)) {
        require(postern::conf::route_name(*route) == route);
    }
    return 0;
}
