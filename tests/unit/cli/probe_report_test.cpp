#include "cli/probe/report.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

using postern::cli::probe::CertSummary;
using postern::cli::probe::days_left_text;
using postern::cli::probe::display_text;
using postern::cli::probe::exit_code;
using postern::cli::probe::format_json;
using postern::cli::probe::format_text;
using postern::cli::probe::judge;
using postern::cli::probe::ProbeReport;
using postern::cli::probe::Protocol;
using postern::cli::probe::Verdict;

namespace {

// A verified, matching implicit-TLS IMAP probe of mail.a.test with a two-certificate chain.
ProbeReport good_report() {
    ProbeReport r;
    r.target = "mail.a.test:993";
    r.address = "192.0.2.7:993";
    r.protocol = Protocol::Imap;
    r.servername = "mail.a.test";
    r.tls_attempted = true;
    r.tls_version = "TLSv1.3";
    r.cipher = "TLS_AES_256_GCM_SHA384";
    r.chain.push_back(CertSummary{"CN=mail.a.test",
                                  "CN=Test CA",
                                  {"mail.a.test", "a.test"},
                                  {"192.0.2.7"},
                                  "2027-02-20 12:00:00 UTC",
                                  "2027-02-20T12:00:00Z",
                                  31});
    r.chain.push_back(CertSummary{"CN=Test CA",
                                  "CN=Test CA",
                                  {},
                                  {},
                                  "2030-01-01 00:00:00 UTC",
                                  "2030-01-01T00:00:00Z",
                                  1500});
    r.name_checked = "mail.a.test";
    r.name_matches = true;
    r.verified = true;
    r.verify_result = "ok";
    r.trust = "the system store";
    r.capabilities_read = true;
    r.capabilities = {"IMAP4rev1", "AUTH=PLAIN"};
    return r;
}

}  // namespace

TEST_CASE("probe_report: display_text keeps printable text and escapes the rest") {
    struct Row {
        std::string_view in;
        std::string_view out;
    };
    const Row rows[] = {
        {"CN=mail.a.test", "CN=mail.a.test"},
        {"O=M\xc3\xbcller GmbH", "O=M\xc3\xbcller GmbH"},  // UTF-8 kept
        {"\xe2\x82\xac 5", "\xe2\x82\xac 5"},              // U+20AC kept
        {"\xf0\x9f\x93\xa7", "\xf0\x9f\x93\xa7"},          // U+1F4E7 kept
        {"a\x1b[31mred", "a\\x1b[31mred"},                 // ESC
        {"line\r\nnext", "line\\x0d\\x0anext"},            // CR LF
        {std::string_view{"nul\0x", 5}, "nul\\x00x"},      // NUL
        {"del\x7f", "del\\x7f"},                           // DEL
        {"back\\slash", "back\\\\slash"},                  // the escape character
        {"\xc2\x85", "\\xc2\\x85"},                        // C1 NEL
        {"abc\xe2\x80\xae"
         "evil",
         "abc\\xe2\\x80\\xaeevil"},                    // U+202E RLO
        {"\xe2\x81\xa6x", "\\xe2\\x81\\xa6x"},         // U+2066 LRI
        {"\xff\xfe", "\\xff\\xfe"},                    // not UTF-8
        {"\xc0\xaf", "\\xc0\\xaf"},                    // overlong '/'
        {"\xed\xa0\x80", "\\xed\\xa0\\x80"},           // surrogate
        {"\xe2\x82", "\\xe2\\x82"},                    // cut short
        {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},  // above U+10FFFF
    };
    for (const auto& row : rows) {
        CAPTURE(row.in);
        CHECK(display_text(row.in) == row.out);
    }
}

TEST_CASE("probe_report: days left in words") {
    CHECK(days_left_text(31) == "31 days left");
    CHECK(days_left_text(1) == "1 day left");
    CHECK(days_left_text(0) == "less than a day left");
    CHECK(days_left_text(-1) == "EXPIRED less than a day ago");
    CHECK(days_left_text(-3) == "EXPIRED 3 days ago");
}

TEST_CASE("probe_report: the first failing check decides the verdict") {
    auto r = good_report();
    CHECK(judge(r).verdict == Verdict::Ok);
    CHECK(judge(r).reason == "ok");

    SUBCASE("a post-TLS protocol error comes last") {
        r.error = "the server refused CAPABILITY: a2 NO";
        CHECK(judge(r).verdict == Verdict::Error);
        CHECK(judge(r).reason == r.error);
        r.verified = false;
        r.verify_result = "certificate has expired";
        CHECK(judge(r).verdict == Verdict::Unverified);
        CHECK(judge(r).reason ==
              "the chain does not verify against the system store: certificate has expired");
        r.name_matches = false;
        r.name_checked = "mail.b.test";
        CHECK(judge(r).verdict == Verdict::NameMismatch);
        CHECK(judge(r).reason ==
              "name mismatch: the certificate does not cover mail.b.test (it covers: "
              "mail.a.test, a.test, IP:192.0.2.7)");
        r.handshake_error = "tlsv1 unrecognized name (SSL routines)";
        CHECK(judge(r).verdict == Verdict::HandshakeFailed);
        CHECK(judge(r).reason == "TLS handshake failed: tlsv1 unrecognized name (SSL routines)");
        r.tls_attempted = false;
        r.error = "connect 192.0.2.7:993: Connection refused";
        CHECK(judge(r).verdict == Verdict::Error);
        CHECK(judge(r).reason == r.error);
    }
    SUBCASE("no certificate at all is a mismatch") {
        r.chain.clear();
        r.name_matches = false;
        CHECK(judge(r).verdict == Verdict::NameMismatch);
        CHECK(judge(r).reason == "the server sent no certificate");
    }
    CHECK(exit_code(Verdict::Ok) == 0);
    CHECK(exit_code(Verdict::Error) == 1);
    CHECK(exit_code(Verdict::HandshakeFailed) == 2);
    CHECK(exit_code(Verdict::NameMismatch) == 3);
    CHECK(exit_code(Verdict::Unverified) == 4);
}

TEST_CASE("probe_report: the text form") {
    auto r = good_report();
    CHECK(format_text(r, judge(r)) ==
          "server        mail.a.test:993 (192.0.2.7:993), implicit TLS, imap\n"
          "sni           mail.a.test\n"
          "tls           TLSv1.3, TLS_AES_256_GCM_SHA384\n"
          "certificate 1 CN=mail.a.test\n"
          "  names       mail.a.test, a.test, IP:192.0.2.7\n"
          "  issuer      CN=Test CA\n"
          "  not after   2027-02-20 12:00:00 UTC (31 days left)\n"
          "certificate 2 CN=Test CA\n"
          "  issuer      CN=Test CA\n"
          "  not after   2030-01-01 00:00:00 UTC (1500 days left)\n"
          "name          mail.a.test matches the certificate\n"
          "chain         verified against the system store\n"
          "capabilities  IMAP4rev1, AUTH=PLAIN\n"
          "result        ok\n");

    SUBCASE("failures, STARTTLS, server text with control bytes") {
        r.starttls = Protocol::Smtp;
        r.protocol = Protocol::Smtp;
        r.target = "192.0.2.7:25";
        r.address = "192.0.2.7:25";
        r.chain.resize(1);
        r.chain[0].subject = "CN=evil\x1b[2J";
        r.chain[0].days_left = -2;
        r.name_matches = false;
        r.name_checked = "mx.b.test";
        r.verified = false;
        r.verify_result = "certificate has expired";
        r.trust = "--cafile ca.pem";
        r.capabilities = {"PIPELINING", "X-EVIL\r\n250 OK"};
        const auto text = format_text(r, judge(r));
        CHECK(text ==
              "server        192.0.2.7:25, STARTTLS smtp\n"
              "sni           mail.a.test\n"
              "tls           TLSv1.3, TLS_AES_256_GCM_SHA384\n"
              "certificate 1 CN=evil\\x1b[2J\n"
              "  names       mail.a.test, a.test, IP:192.0.2.7\n"
              "  issuer      CN=Test CA\n"
              "  not after   2027-02-20 12:00:00 UTC (EXPIRED 2 days ago)\n"
              "name          mx.b.test does NOT match the certificate\n"
              "chain         does NOT verify against --cafile ca.pem: certificate has expired\n"
              "capabilities  PIPELINING, X-EVIL\\x0d\\x0a250 OK\n"
              "result        FAILED (exit 3): name mismatch: the certificate does not cover "
              "mx.b.test (it covers: mail.a.test, a.test, IP:192.0.2.7)\n");
    }
    SUBCASE("a failed handshake shows no certificate lines") {
        r.handshake_error = "tlsv1 alert \x07";
        r.servername.clear();
        const auto text = format_text(r, judge(r));
        CHECK(text ==
              "server        mail.a.test:993 (192.0.2.7:993), implicit TLS, imap\n"
              "sni           (none: the name checked is an IP address)\n"
              "result        FAILED (exit 2): TLS handshake failed: tlsv1 alert \\x07\n");
    }
    SUBCASE("no connection: only the server and the reason") {
        ProbeReport none;
        none.target = "[2001:db8::1]:465";
        none.error = "connect [2001:db8::1]:465: Network is unreachable";
        CHECK(format_text(none, judge(none)) ==
              "server        [2001:db8::1]:465, implicit TLS\n"
              "result        FAILED (exit 1): connect [2001:db8::1]:465: Network is "
              "unreachable\n");
    }
    SUBCASE("POP3 without CAPA") {
        r.capabilities.clear();
        r.capabilities_note = "the server does not support CAPA: -ERR";
        CHECK(format_text(r, judge(r))
                  .find("capabilities  the server does not support CAPA: "
                        "-ERR\n") != std::string::npos);
    }
}

TEST_CASE("probe_report: the JSON form") {
    auto r = good_report();
    const auto j = nlohmann::json::parse(format_json(r, judge(r)));
    CHECK(j["target"] == "mail.a.test:993");
    CHECK(j["address"] == "192.0.2.7:993");
    CHECK(j["starttls"].is_null());
    CHECK(j["protocol"] == "imap");
    CHECK(j["servername"] == "mail.a.test");
    CHECK(j["tls"]["version"] == "TLSv1.3");
    CHECK(j["tls"]["cipher"] == "TLS_AES_256_GCM_SHA384");
    CHECK(j["handshake_error"].is_null());
    REQUIRE(j["chain"].size() == 2);
    CHECK(j["chain"][0]["subject"] == "CN=mail.a.test");
    CHECK(j["chain"][0]["issuer"] == "CN=Test CA");
    CHECK(j["chain"][0]["dns_names"] == nlohmann::json::array({"mail.a.test", "a.test"}));
    CHECK(j["chain"][0]["ip_addresses"] == nlohmann::json::array({"192.0.2.7"}));
    CHECK(j["chain"][0]["not_after"] == "2027-02-20T12:00:00Z");
    CHECK(j["chain"][0]["days_left"] == 31);
    CHECK(j["name"] == nlohmann::json{{"checked", "mail.a.test"}, {"matches", true}});
    CHECK(j["verify"] ==
          nlohmann::json{{"ok", true}, {"result", "ok"}, {"trust", "the system store"}});
    CHECK(j["capabilities"] == nlohmann::json::array({"IMAP4rev1", "AUTH=PLAIN"}));
    CHECK(j["capabilities_note"].is_null());
    CHECK(j["ok"] == true);
    CHECK(j["exit_code"] == 0);
    CHECK(j["error"].is_null());

    SUBCASE("server text is escaped, and malformed UTF-8 replaced") {
        r.chain[0].subject = "CN=a\x1b\"\xff";
        r.capabilities = {"X\r\nY"};
        r.verified = false;
        r.verify_result = "self-signed certificate";
        const auto text = format_json(r, judge(r));
        CHECK(text.find('\x1b') == std::string::npos);
        CHECK(text.find('\r') == std::string::npos);
        const auto parsed = nlohmann::json::parse(text);
        CHECK(parsed["chain"][0]["subject"] == "CN=a\x1b\"\xef\xbf\xbd");
        CHECK(parsed["capabilities"][0] == "X\r\nY");
        CHECK(parsed["ok"] == false);
        CHECK(parsed["exit_code"] == 4);
        CHECK(parsed["error"] ==
              "the chain does not verify against the system store: self-signed certificate");
        CHECK(parsed["verify"]["ok"] == false);
    }
    SUBCASE("nothing learned") {
        ProbeReport none;
        none.target = "x:1";
        none.error = "cannot resolve x: Name or service not known";
        const auto parsed = nlohmann::json::parse(format_json(none, judge(none)));
        CHECK(parsed["address"].is_null());
        CHECK(parsed["tls"].is_null());
        CHECK(parsed["name"].is_null());
        CHECK(parsed["verify"].is_null());
        CHECK(parsed["capabilities"].is_null());
        CHECK(parsed["chain"].empty());
        CHECK(parsed["exit_code"] == 1);
        CHECK(parsed["error"] == none.error);
    }
}
