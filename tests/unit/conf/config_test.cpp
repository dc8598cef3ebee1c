#include "conf/config.hpp"

#include <doctest/doctest.h>

#include <string_view>

namespace postern::conf {

TEST_CASE("conf: enums print as their config spelling") {
    CHECK(std::string_view{to_string(Protocol::Imap)} == "imap");
    CHECK(std::string_view{to_string(Protocol::Pop3)} == "pop3");
    CHECK(std::string_view{to_string(Protocol::Smtp)} == "smtp");
    CHECK(std::string_view{to_string(TlsMode::Implicit)} == "implicit");
    CHECK(std::string_view{to_string(TlsMode::StartTls)} == "starttls");
    CHECK(std::string_view{to_string(TlsVersion::Tls12)} == "1.2");
    CHECK(std::string_view{to_string(TlsVersion::Tls13)} == "1.3");
}

TEST_CASE("conf: an endpoint prints as host:port and brackets an IPv6 host again") {
    CHECK(Endpoint{"127.0.0.1", 993}.to_string() == "127.0.0.1:993");
    CHECK(Endpoint{"mail.example.net", 25}.to_string() == "mail.example.net:25");
    CHECK(Endpoint{"::1", 143}.to_string() == "[::1]:143");
    CHECK(Endpoint{"fe80::1%eth0", 110}.to_string() == "[fe80::1%eth0]:110");
}

TEST_CASE("conf: find_backend matches the exact name or returns null") {
    Config config;
    for (const auto& [name, port] : {std::pair{"imap", 143}, std::pair{"pop3", 110}}) {
        BackendSpec backend;
        backend.name = name;
        backend.addresses = {{"127.0.0.1", static_cast<std::uint16_t>(port)}};
        config.backends.push_back(std::move(backend));
    }
    REQUIRE(config.find_backend("pop3") != nullptr);
    CHECK(config.find_backend("pop3")->addresses.at(0).port == 110);
    CHECK(config.find_backend("POP3") == nullptr);
    CHECK(config.find_backend("smtp") == nullptr);
}

TEST_CASE("conf: idle timeout defaults follow each protocol's RFC") {
    using std::chrono::minutes;
    CHECK(default_idle_timeout(Protocol::Imap) == minutes{30});
    CHECK(default_idle_timeout(Protocol::Pop3) == minutes{10});
    CHECK(default_idle_timeout(Protocol::Smtp) == minutes{5});
}

}  // namespace postern::conf
