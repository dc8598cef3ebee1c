#include "proxy/service_manager.hpp"

#include <doctest/doctest.h>

#include <string>

using postern::proxy::service_status;

TEST_CASE("service status: sessions and certificates, singular for one") {
    CHECK(service_status(12, 3, "") == "12 sessions, 3 certificates");
    CHECK(service_status(1, 1, "") == "1 session, 1 certificate");
    CHECK(service_status(0, 2, "") == "0 sessions, 2 certificates");
}

TEST_CASE("service status: a failed reload is said on the same line, cut to a readable length") {
    CHECK(service_status(0, 2, "a.pem: no key\nsecond line") ==
          "0 sessions, 2 certificates; reload failed: a.pem: no key second line");
    const std::string status = service_status(0, 2, std::string(1000, 'x'));
    CHECK(status.find('\n') == std::string::npos);
    CHECK(status.size() < 600);
    CHECK(status.ends_with("..."));
}
