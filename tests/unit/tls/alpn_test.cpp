// ALPN's pure part: finding the listener's id in a client's protocol_name_list (RFC 7301 §3.1)
// and the list as log text. The handshakes are in front_context_test.cpp.
#include "tls/alpn.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using postern::protocols::Protocol;
using postern::tls::alpn_id;
using postern::tls::alpn_list_text;
using postern::tls::find_alpn;

namespace {

std::vector<std::uint8_t> bytes(std::string_view text) {
    return {text.begin(), text.end()};
}

// The id found, as text; "-" when none.
std::string found(std::string_view list, std::string_view id) {
    const auto b = bytes(list);
    const auto hit = find_alpn(b, id);
    if (!hit) {
        return "-";
    }
    // A view into the list itself, as OpenSSL's select callback must return.
    CHECK(hit->data() >= b.data());
    CHECK(hit->data() + hit->size() <= b.data() + b.size());
    return {reinterpret_cast<const char*>(hit->data()), hit->size()};
}

}  // namespace

TEST_CASE("alpn: the ids are imap, pop3 and smtp") {
    CHECK(alpn_id(Protocol::Imap) == "imap");
    CHECK(alpn_id(Protocol::Pop3) == "pop3");
    CHECK(alpn_id(Protocol::Smtp) == "smtp");
}

TEST_CASE("alpn: the id is found wherever it sits in the list, compared exactly") {
    CHECK(found("\x04imap", "imap") == "imap");
    CHECK(found("\x02h2\x08http/1.1\x04imap", "imap") == "imap");
    CHECK(found("\x04imap\x08http/1.1", "imap") == "imap");
    CHECK(found("\x08http/1.1", "imap") == "-");
    CHECK(found("\x04pop3", "imap") == "-");
    CHECK(found("\x04IMAP", "imap") == "-");  // RFC 7301: ids are compared as bytes
    CHECK(found("\x05imaps\x03ima", "imap") == "-");
    CHECK(found(std::string_view("\x04im\0p", 5), "imap") == "-");
    CHECK(found("", "imap") == "-");
}

TEST_CASE("alpn: a malformed list ends the search without reading past it") {
    CHECK(found("\x09imap", "imap") == "-");                           // length past the end
    CHECK(found(std::string_view("\x00\x04imap", 6), "imap") == "-");  // empty name
    CHECK(found("\x04imap\x09x", "imap") == "imap");                   // found before the bad tail
    CHECK(found("\x02h2\x09imap", "imap") == "-");
    CHECK(found("\x04", "imap") == "-");
}

TEST_CASE("alpn: the list as log text, capped") {
    CHECK(alpn_list_text(bytes("\x08http/1.1")) == "http/1.1");
    CHECK(alpn_list_text(bytes("\x02h2\x08http/1.1")) == "h2,http/1.1");
    CHECK(alpn_list_text(bytes("")) == "nothing");
    CHECK(alpn_list_text(bytes("\x02h2\x09x")) == "h2,x");  // a short tail shows what is there
    std::string many;
    for (int i = 0; i < 40; ++i) {
        many += "\x08http/1.1";
    }
    const std::string text = alpn_list_text(bytes(many), 20);
    CHECK(text == "http/1.1,http/1.1,ht...");  // 20 bytes, then the mark
    const std::string huge(1, '\xff');
    CHECK(alpn_list_text(bytes(huge + std::string(255, 'x')), 100).size() == 103);
}
