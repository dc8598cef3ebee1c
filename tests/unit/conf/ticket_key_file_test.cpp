// tls.ticket_keys_file: HAProxy's tls-ticket-keys format (conf/ticket_key_file.hpp): 48- and
// 80-byte keys and their layout, the last three used, and the refusals with their line; and the
// loader's check of the file, naming it and the line.
#include "conf/ticket_key_file.hpp"

#include "conf/load.hpp"
#include "tests/unit/conf/conf_test_support.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace postern::conf {

using test::ConfDir;
using test::contains;
using test::kValidHead;
using test::kValidListener;
using test::single_error;

namespace {

std::string base64(std::string_view bytes) {
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            group = (group << 8) | (j < n ? static_cast<unsigned char>(bytes[i + j]) : 0U);
        }
        for (std::size_t j = 0; j < 4; ++j) {
            out += j <= n ? kAlphabet[(group >> (18 - 6 * j)) & 0x3fU] : '=';
        }
    }
    return out;
}

// One key line: `size` bytes counting up from `first`, base64.
std::string key_line(std::size_t size, unsigned first) {
    std::string bytes;
    for (std::size_t i = 0; i < size; ++i) {
        bytes += static_cast<char>((first + i) & 0xffU);
    }
    return base64(bytes);
}

std::string key_file(std::size_t size, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        out += key_line(size, static_cast<unsigned>(i * 10)) + "\n";
    }
    return out;
}

}  // namespace

TEST_CASE("ticket_key_file: the base64 helper agrees with Python's") {
    CHECK(key_line(48, 0) == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v");
    CHECK(key_line(80, 50) ==
          "MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJz"
          "dHV2d3h5ent8fX5/gIE=");
}

TEST_CASE("ticket_key_file: 80-byte keys are name 16 | AES-256 32 | HMAC 32 (HAProxy's)") {
    const TicketKeyFile file = parse_ticket_keys(key_line(80, 0) + "\n" + key_line(80, 100) + "\n" +
                                                 key_line(80, 200) + "\n");
    REQUIRE_MESSAGE(file.error.empty(), file.error);
    REQUIRE(file.keys.size() == 3);
    const TicketKey& key = file.keys[1];  // the penultimate: the one that encrypts
    CHECK(key.secret_bytes == 32);
    CHECK(key.name[0] == 100);
    CHECK(key.name[15] == 115);
    CHECK(key.aes[0] == 116);
    CHECK(key.aes[31] == 147);
    CHECK(key.hmac[0] == 148);
    CHECK(key.hmac[31] == 179);
    CHECK(file.keys[2].name[0] == 200);
}

TEST_CASE("ticket_key_file: 48-byte keys are name 16 | AES-128 16 | HMAC 16 (HAProxy's)") {
    // CRLF line ends and a last line without one are taken, as HAProxy's fgets loop does.
    const TicketKeyFile file = parse_ticket_keys(key_line(48, 0) + "\r\n" + key_line(48, 100) +
                                                 "\r\n" + key_line(48, 200));
    REQUIRE_MESSAGE(file.error.empty(), file.error);
    REQUIRE(file.keys.size() == 3);
    const TicketKey& key = file.keys[1];
    CHECK(key.secret_bytes == 16);
    CHECK(key.name[0] == 100);
    CHECK(key.aes[0] == 116);
    CHECK(key.aes[15] == 131);
    CHECK(key.hmac[0] == 132);
    CHECK(key.hmac[15] == 147);
}

TEST_CASE("ticket_key_file: only the last three keys are used, in file order") {
    const TicketKeyFile file = parse_ticket_keys(key_file(80, 5));  // names start 0,10,..,40
    REQUIRE_MESSAGE(file.error.empty(), file.error);
    REQUIRE(file.keys.size() == 3);
    CHECK(file.keys[0].name[0] == 20);
    CHECK(file.keys[1].name[0] == 30);  // encrypts
    CHECK(file.keys[2].name[0] == 40);
}

TEST_CASE("ticket_key_file: refusals name the line") {
    struct Case {
        const char* what;
        std::string text;
        std::uint32_t line;
        const char* says;
    };
    const std::string good = key_line(80, 0) + "\n";
    const std::vector<Case> cases{
        {"fewer than three keys", good + good, 0, "at least 3"},
        {"an empty file", "", 0, "has 0 key(s)"},
        {"mixed lengths", good + key_line(48, 0) + "\n" + good, 2, "same length"},
        {"a key of the wrong size", good + good + key_line(64, 0) + "\n", 3, "64 bytes"},
        {"not base64", good + "not base64!\n" + good + good, 2, "not a base64"},
        {"base64 without its padding", good + key_line(80, 0).substr(0, 107) + "\n" + good, 2,
         "not a base64"},
        {"padding inside", good + good + "AA==" + key_line(48, 0) + "\n", 3, "not a base64"},
        {"a space after the key", good + key_line(80, 0) + " \n" + good, 2, "not a base64"},
        {"an empty line", good + "\n" + good + good, 2, "empty line"},
        {"a comment", "# keys\n" + good + good + good, 1, "not a base64"},
        {"too long a key", good + good + good + key_line(96, 0) + "\n", 4, "not a base64"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        const TicketKeyFile file = parse_ticket_keys(c.text);
        CHECK(file.keys.empty());
        CHECK(file.line == c.line);
        CHECK_MESSAGE(contains(file.error, c.says), file.error);
    }
}

TEST_CASE("ticket_key_file: errors never show key bytes") {
    const std::string secret = key_line(64, 0);
    const TicketKeyFile file = parse_ticket_keys(secret + "\n");
    CHECK_FALSE(file.error.empty());
    CHECK_FALSE(contains(file.error, secret.substr(0, 8)));
}

TEST_CASE("conf: tls.ticket_keys_file is read through the snapshot and checked") {
    const ConfDir dir;
    const auto with = [](std::string_view file) {
        std::string text{kValidHead};
        text.insert(text.find('\n') + 1, "ticket_keys_file = \"" + std::string{file} + "\"\n");
        return text + std::string{kValidListener};
    };
    SUBCASE("a good file, resolved against the config's folder") {
        const auto path = dir.write("tickets.key", key_file(80, 3));
        const LoadResult result = dir.load(with("tickets.key"));
        INFO(format_errors(result.errors));
        REQUIRE(result.config);
        CHECK(result.config->tls.ticket_keys_file == path);
        CHECK(result.config->tls.ticket_keys_file_at.line == 2);
    }
    SUBCASE("absent by default") {
        const LoadResult result = dir.load(std::string{kValidHead} + std::string{kValidListener});
        REQUIRE(result.config);
        CHECK(result.config->tls.ticket_keys_file.empty());
    }
    SUBCASE("a malformed file: the error names the file and its line") {
        const auto path = dir.write("tickets.key", key_file(80, 2) + "bad\n" + key_file(80, 1));
        const ConfigError e = single_error(dir.load(with("tickets.key")));
        CHECK(e.key == "tls.ticket_keys_file");
        CHECK(e.line == 2);
        CHECK_MESSAGE(contains(e.message, path.string() + ":3: not a base64"), e.message);
    }
    SUBCASE("a missing file") {
        const ConfigError e = single_error(dir.load(with("nowhere.key")));
        CHECK(e.key == "tls.ticket_keys_file");
        CHECK_MESSAGE(contains(e.message, "cannot read"), e.message);
        CHECK_MESSAGE(contains(e.message, "nowhere.key"), e.message);
    }
}

}  // namespace postern::conf
