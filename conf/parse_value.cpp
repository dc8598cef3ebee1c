#include "conf/parse_value.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <cstddef>
#include <limits>

namespace postern::conf {

namespace {

constexpr std::string_view kEndpointForms = "expected host:port or [v6]:port";
constexpr std::string_view kDurationForms =
    "expected a whole number followed by ms, s, m or h, e.g. 250ms, 30s, 5m, 1h";

bool is_ascii_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

bool is_ascii_alnum(char c) noexcept {
    return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_hex_digit(char c) noexcept {
    return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool all_of(std::string_view text, bool (*pred)(char) noexcept) noexcept {
    for (const char c : text) {
        if (!pred(c)) {
            return false;
        }
    }
    return true;
}

bool is_host_char(char c) noexcept {
    return is_ascii_alnum(c) || c == '.' || c == '-' || c == '_';
}

bool is_ipv6_char(char c) noexcept {
    return is_hex_digit(c) || c == ':' || c == '.';
}

// Digits only; from_chars alone would take a leading '-' and stop quietly at junk.
std::optional<std::uint64_t> parse_digits(std::string_view text) noexcept {
    if (text.empty() || !all_of(text, &is_ascii_digit)) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{}) {
        return std::numeric_limits<std::uint64_t>::max();  // too many digits: surely too big
    }
    return value;
}

std::string quoted(std::string_view text) {
    std::string out = "\"";
    out += text;
    out += '"';
    return out;
}

Parsed<Endpoint> endpoint_error(std::string_view text, std::string_view why) {
    std::string message = "invalid address " + quoted(text) + ": ";
    message += why;
    return {std::nullopt, std::move(message)};
}

// Checks the text between the brackets of "[v6]:port".
std::string ipv6_problem(std::string_view host) {
    if (host.empty()) {
        return "empty host between the brackets";
    }
    if (host.find(':') == std::string_view::npos) {
        return "brackets are only for IPv6 addresses; write host:port";
    }
    const std::size_t percent = host.find('%');
    const std::string_view address = host.substr(0, percent);
    if (!all_of(address, &is_ipv6_char)) {
        return "not an IPv6 address between the brackets";
    }
    if (percent != std::string_view::npos) {
        const std::string_view zone = host.substr(percent + 1);
        if (zone.empty() || !all_of(zone, &is_host_char)) {
            return "invalid IPv6 zone after '%'";
        }
    }
    return {};
}

Parsed<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty()) {
        return {std::nullopt, "no port after ':' (" + std::string{kEndpointForms} + ")"};
    }
    const std::optional<std::uint64_t> value = parse_digits(text);
    if (!value) {
        return {std::nullopt, "port " + quoted(text) + " is not a number"};
    }
    if (*value == 0) {
        return {std::nullopt, "port 0 is not allowed (use 1-65535)"};
    }
    if (*value > std::numeric_limits<std::uint16_t>::max()) {
        return {std::nullopt, "port " + std::string{text} + " is out of range (1-65535)"};
    }
    return {static_cast<std::uint16_t>(*value), {}};
}

Parsed<std::chrono::milliseconds> duration_error(std::string_view shown, std::string_view why) {
    std::string message = "invalid duration ";
    message += shown;
    message += ": ";
    message += why;
    return {std::nullopt, std::move(message)};
}

constexpr std::int64_t kMaxDurationMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(kMaxDuration).count();

Parsed<std::chrono::milliseconds> bounded(std::uint64_t count, std::uint64_t unit_ms,
                                          std::string_view shown, Zero zero = Zero::Refused) {
    if (count == 0 && zero == Zero::Allowed) {
        return {std::chrono::milliseconds{0}, {}};
    }
    if (count == 0) {
        return duration_error(shown, "must be greater than 0");
    }
    if (count > static_cast<std::uint64_t>(kMaxDurationMs) / unit_ms) {
        return duration_error(
            shown, "too long (at most " + std::to_string(kMaxDuration.count()) + "h, 365 days)");
    }
    return {std::chrono::milliseconds{static_cast<std::int64_t>(count * unit_ms)}, {}};
}

}  // namespace

Parsed<Endpoint> parse_endpoint(std::string_view text) {
    if (text.empty()) {
        return endpoint_error(text, "empty (" + std::string{kEndpointForms} + ")");
    }
    std::string_view host;
    std::string_view rest;  // what follows the host: ":port", or less when malformed
    if (text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return endpoint_error(text, "'[' without a matching ']'");
        }
        host = text.substr(1, close - 1);
        rest = text.substr(close + 1);
        if (const std::string problem = ipv6_problem(host); !problem.empty()) {
            return endpoint_error(text, problem);
        }
        if (rest.empty()) {
            return endpoint_error(text, "no port (" + std::string{kEndpointForms} + ")");
        }
        if (rest.front() != ':') {
            return endpoint_error(text, "expected ':' and a port after ']'");
        }
    } else {
        if (text.find(']') != std::string_view::npos) {
            return endpoint_error(text, "']' without a matching '['");
        }
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return endpoint_error(text, "no port (" + std::string{kEndpointForms} + ")");
        }
        host = text.substr(0, colon);
        rest = text.substr(colon);
        if (host.find(':') != std::string_view::npos) {
            return endpoint_error(text, "an IPv6 address needs brackets, e.g. [::1]:993");
        }
        if (host.empty()) {
            return endpoint_error(text, "empty host (use 0.0.0.0 or [::] for every address)");
        }
        if (!all_of(host, &is_host_char)) {
            return endpoint_error(text, "host may only hold letters, digits, '.', '-' and '_'");
        }
    }
    const Parsed<std::uint16_t> port = parse_port(rest.substr(1));
    if (!port.value) {
        return endpoint_error(text, port.error);
    }
    return {Endpoint{std::string{host}, *port.value}, {}};
}

Parsed<std::chrono::milliseconds> parse_duration(std::string_view text, Zero zero) {
    const std::string shown = quoted(text);
    std::size_t digits = 0;
    while (digits < text.size() && is_ascii_digit(text[digits])) {
        ++digits;
    }
    const std::string_view unit = text.substr(digits);
    if (digits == 0) {
        return duration_error(shown, kDurationForms);
    }
    std::uint64_t unit_ms = 0;
    if (unit == "ms") {
        unit_ms = 1;
    } else if (unit == "s") {
        unit_ms = 1000;
    } else if (unit == "m") {
        unit_ms = 60'000;
    } else if (unit == "h") {
        unit_ms = 3'600'000;
    } else if (unit.empty()) {
        return duration_error(shown, "no unit (ms, s, m or h)");
    } else {
        return duration_error(shown, kDurationForms);
    }
    const std::optional<std::uint64_t> count = parse_digits(text.substr(0, digits));
    return bounded(count.value_or(0), unit_ms, shown, zero);
}

Parsed<Rate> parse_rate(std::string_view text) {
    if (text == "off") {
        return {Rate{}, {}};
    }
    const auto fail = [text](std::string_view why) {
        return Parsed<Rate>{std::nullopt, "invalid rate " + quoted(text) + ": " + std::string{why}};
    };
    constexpr std::string_view kRateForms =
        R"(expected "off" or new connections per window, e.g. "30/10s", "100/1m", "10/s")";
    const std::size_t slash = text.find('/');
    if (slash == std::string_view::npos) {
        return fail(kRateForms);
    }
    const std::optional<std::uint64_t> count = parse_digits(text.substr(0, slash));
    if (!count) {
        return fail(kRateForms);
    }
    if (*count == 0) {
        return fail("the count must be at least 1 (write \"off\" for no limit)");
    }
    if (*count > kMaxPerClient) {
        return fail("the count must be at most " + std::to_string(kMaxPerClient));
    }
    std::string window{text.substr(slash + 1)};
    if (!window.empty() && !is_ascii_digit(window.front())) {
        window.insert(0, "1");  // "10/s": one second
    }
    const Parsed<std::chrono::milliseconds> duration = parse_duration(window);
    if (!duration.value) {
        return fail(kRateForms);
    }
    if (*duration.value < kMinRateWindow || *duration.value > kMaxRateWindow) {
        return fail("the window must be from 1s to 1h");
    }
    return {Rate{static_cast<std::uint32_t>(*count), *duration.value}, {}};
}

Parsed<std::chrono::milliseconds> duration_from_seconds(std::int64_t seconds, Zero zero) {
    const std::string shown = std::to_string(seconds);
    if (seconds == 0 && zero == Zero::Allowed) {
        return {std::chrono::milliseconds{0}, {}};
    }
    if (seconds < 0 && zero == Zero::Allowed) {
        return duration_error(shown, "must be 0 or more");
    }
    if (seconds <= 0) {
        return duration_error(shown, "must be greater than 0");
    }
    return bounded(static_cast<std::uint64_t>(seconds), 1000, shown);
}

bool is_dns_name(std::string_view name) noexcept {
    constexpr std::size_t kMaxName = 253;
    constexpr std::size_t kMaxLabel = 63;
    if (name.empty() || name.size() > kMaxName) {
        return false;
    }
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = name.find('.', start);
        const std::string_view label = name.substr(
            start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty() || label.size() > kMaxLabel || label.front() == '-' ||
            label.back() == '-') {
            return false;
        }
        for (const char c : label) {
            if (!is_ascii_alnum(c) && c != '-') {
                return false;
            }
        }
        if (dot == std::string_view::npos) {
            return true;
        }
        start = dot + 1;
    }
}

Parsed<Network> parse_network(std::string_view text) {
    const std::string quoted = "\"" + std::string{text} + "\"";
    const auto fail = [&quoted](std::string_view why) {
        return Parsed<Network>{std::nullopt, quoted + " is not an address or network (" +
                                                 std::string{why} +
                                                 "); write e.g. \"10.0.0.0/8\", \"192.0.2.7\" "
                                                 "or \"2001:db8::/32\""};
    };
    const std::size_t slash = text.find('/');
    const std::string address{text.substr(0, slash)};
    Network net;
    if (inet_pton(AF_INET, address.c_str(), net.bytes.data()) == 1) {
        net.family = 4;
        net.prefix = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), net.bytes.data()) == 1) {
        net.family = 6;
        net.prefix = 128;
    } else {
        return fail("not an IPv4 or IPv6 address");
    }
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        unsigned prefix = 0;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
            prefix > net.prefix || (digits.size() > 1 && digits.front() == '0')) {
            return fail("the prefix length must be 0 to " + std::to_string(net.prefix));
        }
        net.prefix = static_cast<std::uint8_t>(prefix);
    }
    const std::size_t size = net.family == 4 ? 4 : 16;
    Network cleared = net;
    for (std::size_t bit = net.prefix; bit < size * 8; ++bit) {
        cleared.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80U >> (bit % 8)));
    }
    if (cleared.bytes != net.bytes) {
        return fail("host bits are set; the network is " + cleared.to_string() +
                    ", one address is " + address);
    }
    return {net, {}};
}

std::optional<std::string> route_name(std::string_view text) {
    std::string name{text};
    for (char& c : name) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    if (!name.empty() && name.back() == '.') {
        name.pop_back();
    }
    const std::string_view host = name.starts_with("*.") ? std::string_view{name}.substr(2) : name;
    if (!is_dns_name(host)) {
        return std::nullopt;
    }
    return name;
}

}  // namespace postern::conf
