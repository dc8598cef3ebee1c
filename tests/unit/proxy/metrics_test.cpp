// The metrics text (proxy/metrics.hpp): counters summed over workers, the gauge of open
// sessions, label escaping, and every family with one # HELP and one # TYPE.
#include "proxy/metrics.hpp"

#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

using postern::protocols::CloseReason;
using postern::proxy::escape_label_value;
using postern::proxy::HandshakeResult;
using postern::proxy::ListenerCounters;
using postern::proxy::render;
using postern::proxy::Scrape;
using postern::proxy::sum_listener;
using postern::proxy::tls_version_index;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in{text};
    for (std::string l; std::getline(in, l);) {
        if (l == line) {
            return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE("label values escape backslash, double quote and line feed") {
    CHECK(escape_label_value("plain") == "plain");
    CHECK(escape_label_value(R"(a\b"c)"
                             "\n") == R"(a\\b\"c\n)");
}

TEST_CASE("a listener's counters are summed over the workers") {
    ListenerCounters a;
    ListenerCounters b;
    a.sessions_started.add(3);
    b.sessions_started.add(2);
    a.session_ended(CloseReason::ClientQuit);
    b.session_ended(CloseReason::ClientQuit);
    b.session_ended(CloseReason::TlsFailed);
    a.handshake(HandshakeResult::Ok, tls_version_index(0x0304));
    b.handshake(HandshakeResult::Ok, tls_version_index(0x0304));
    b.starttls_discarded_bytes.add(7);
    a.served.add("mail.example.net");
    b.served.add("mail.example.net");
    b.served.add("default");
    a.sni_rejected.add();
    b.rejected(postern::proxy::Limit::MaxNewPerClient);
    b.rejected(postern::proxy::Limit::None);  // admitted: not a refusal
    std::map<std::string, std::uint64_t, std::less<>> served;
    const auto t = sum_listener("0.0.0.0:993", {&a, &b}, served);
    CHECK(t.sessions_active == 2);
    CHECK(t.sessions_ended.at(static_cast<std::size_t>(CloseReason::ClientQuit)) == 2);
    CHECK(t.sessions_ended.at(static_cast<std::size_t>(CloseReason::TlsFailed)) == 1);
    CHECK(t.handshakes.at(0).at(3) == 2);
    CHECK(t.starttls_discarded_bytes == 7);

    CHECK(served == std::map<std::string, std::uint64_t, std::less<>>{{"default", 1},
                                                                      {"mail.example.net", 2}});

    Scrape s;
    s.listeners.push_back(t);
    s.served = served;
    const std::string text = render(s);
    CHECK(has_line(text, R"(postern_certificate_served_total{certificate="mail.example.net"} 2)"));
    CHECK(has_line(text, R"(postern_certificate_served_total{certificate="default"} 1)"));
    CHECK(has_line(text, R"(postern_sni_rejected_total{listener="0.0.0.0:993"} 1)"));
    CHECK(has_line(
        text,
        R"(postern_limit_rejected_total{listener="0.0.0.0:993",limit="max_new_per_client"} 1)"));
    CHECK(has_line(
        text, R"(postern_limit_rejected_total{listener="0.0.0.0:993",limit="max_sessions"} 0)"));
    CHECK(has_line(text, R"(postern_sessions_active{listener="0.0.0.0:993"} 2)"));
    CHECK(has_line(text, R"(postern_sessions_total{listener="0.0.0.0:993",end="client_quit"} 2)"));
    CHECK(has_line(
        text,
        R"(postern_handshakes_total{listener="0.0.0.0:993",result="ok",version="TLSv1.3"} 2)"));
    CHECK(has_line(text, R"(postern_starttls_discarded_bytes_total{listener="0.0.0.0:993"} 7)"));
}

TEST_CASE("the open-sessions gauge never goes below zero") {
    ListenerCounters a;
    a.session_ended(CloseReason::ClientClosed);  // read as ended before its start was seen
    std::map<std::string, std::uint64_t, std::less<>> served;
    CHECK(sum_listener("x", {&a}, served).sessions_active == 0);
}

TEST_CASE("every family has one HELP and one TYPE, before its samples, and labels are escaped") {
    Scrape s;
    s.listeners.push_back(sum_listener("[::]:993", {}, s.served));
    s.certificates.push_back({.name = "mail.example.net",
                              .file = "/etc/a \"b\"\\c\nd.pem",
                              .key_type = "ecdsa",
                              .not_after = 1800000000});
    s.version = "1.0";
    s.openssl = "3.0.11";
    s.process.open_fds = 12;
    const std::string text = render(s);
    CHECK(has_line(
        text,
        R"(postern_certificate_not_after_seconds{certificate="mail.example.net",file="/etc/a \"b\"\\c\nd.pem",key_type="ecdsa"} 1800000000)"));
    CHECK(has_line(text, R"(postern_build_info{version="1.0",openssl="3.0.11"} 1)"));
    CHECK(has_line(text, "process_open_fds 12"));

    std::set<std::string> helped;
    std::set<std::string> typed;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);) {
        REQUIRE(!line.empty());
        std::istringstream words{line};
        std::string first;
        std::string kind;
        std::string name;
        words >> first;
        if (first == "#") {
            words >> kind >> name;
            auto& seen = kind == "HELP" ? helped : typed;
            CHECK(seen.insert(name).second);  // once only
            continue;
        }
        const std::string family = first.substr(0, first.find('{'));
        INFO(line);
        CHECK(helped.count(family) == 1);
        CHECK(typed.count(family) == 1);
    }
    CHECK(helped == typed);
    CHECK(helped.count("postern_sessions_total") == 1);
    CHECK(helped.count("process_cpu_seconds_total") == 1);
}
