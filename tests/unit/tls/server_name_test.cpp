#include "tls/server_name.hpp"

#include <doctest/doctest.h>

#include <vector>

using postern::tls::normalize_host_name;
using postern::tls::normalize_san_name;
using postern::tls::parse_server_name_ext;
using postern::tls::wildcard_key;

namespace {
std::vector<std::uint8_t> sni_ext(std::string_view name, std::uint8_t type = 0) {
    std::vector<std::uint8_t> out;
    const std::size_t entry = 3 + name.size();
    out.push_back(static_cast<std::uint8_t>(entry >> 8U));
    out.push_back(static_cast<std::uint8_t>(entry & 0xffU));
    out.push_back(type);
    out.push_back(static_cast<std::uint8_t>(name.size() >> 8U));
    out.push_back(static_cast<std::uint8_t>(name.size() & 0xffU));
    out.insert(out.end(), name.begin(), name.end());
    return out;
}
}  // namespace

TEST_CASE("server_name: host_name is read from a well-formed extension") {
    const auto ext = sni_ext("mail.example.com");
    CHECK(parse_server_name_ext(ext) == "mail.example.com");
}

TEST_CASE("server_name: malformed extensions yield no name and never overread") {
    auto ext = sni_ext("mail.example.com");
    for (std::size_t cut = 0; cut < ext.size(); ++cut) {
        CHECK_FALSE(parse_server_name_ext({ext.data(), cut}).has_value());
    }
    ext[4] = 0xff;  // name length beyond the buffer
    CHECK_FALSE(parse_server_name_ext(ext).has_value());
    CHECK_FALSE(parse_server_name_ext(sni_ext("x.test", 1)).has_value());  // not host_name
}

TEST_CASE("server_name: names are lower-cased and lose one trailing dot") {
    CHECK(normalize_host_name("MAIL.Example.COM.") == "mail.example.com");
    CHECK(normalize_host_name("mail.example.com") == "mail.example.com");
    CHECK_FALSE(normalize_host_name("mail.example.com..").has_value());
}

TEST_CASE("server_name: IP literals and junk are not host names (RFC 6066 section 3)") {
    CHECK_FALSE(normalize_host_name("127.0.0.1").has_value());
    CHECK_FALSE(normalize_host_name("::1").has_value());
    CHECK_FALSE(normalize_host_name("[::1]").has_value());
    CHECK_FALSE(normalize_host_name("").has_value());
    CHECK_FALSE(normalize_host_name(".").has_value());
    CHECK_FALSE(normalize_host_name("a..b").has_value());
    CHECK_FALSE(normalize_host_name(std::string_view("a\0b.test", 8)).has_value());
    CHECK_FALSE(normalize_host_name("mail example.com").has_value());
    CHECK_FALSE(normalize_host_name(std::string(64, 'a') + ".test").has_value());
    CHECK(normalize_host_name(std::string(63, 'a') + ".test").has_value());
    CHECK_FALSE(normalize_host_name(std::string(254, 'a')).has_value());
}

TEST_CASE("server_name: the config's host name rule (conf::is_dns_name, RFC 1123 section 2.1)") {
    CHECK(normalize_host_name("xn--bcher-kva.a-1.test") == "xn--bcher-kva.a-1.test");
    CHECK(normalize_host_name("1mail.test") == "1mail.test");
    CHECK_FALSE(normalize_host_name("mail_1.example.net").has_value());
    CHECK_FALSE(normalize_host_name("-mail.example.net").has_value());
    CHECK_FALSE(normalize_host_name("mail-.example.net").has_value());
    CHECK_FALSE(normalize_san_name("*.mail_1.example.net").has_value());
}

TEST_CASE("server_name: wildcard SANs need two labels after the star") {
    CHECK(normalize_san_name("*.Example.com") == "*.example.com");
    CHECK_FALSE(normalize_san_name("*.com").has_value());
    CHECK_FALSE(normalize_san_name("a.*.example.com").has_value());
    CHECK_FALSE(normalize_san_name("*").has_value());
}

TEST_CASE("server_name: the wildcard key is the parent of the first label") {
    CHECK(wildcard_key("a.example.com") == ".example.com");
    CHECK(wildcard_key("a.b.example.com") == ".b.example.com");
    CHECK(wildcard_key("localhost").empty());
}
