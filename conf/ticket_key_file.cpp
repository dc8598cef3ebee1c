#include "conf/ticket_key_file.hpp"

#include <algorithm>
#include <cstring>  // explicit_bzero
#include <optional>

namespace postern::conf {
namespace {

constexpr std::size_t kNameBytes = 16;
constexpr std::size_t kShortKey = 48;  // HAProxy's struct tls_sess_key_128
constexpr std::size_t kLongKey = 80;   // HAProxy's struct tls_sess_key_256

int sextet(char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

// Decoded bytes, wiped when freed.
struct Secret {
    std::array<unsigned char, kLongKey> bytes{};
    std::size_t size = 0;
    Secret() = default;
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    Secret(Secret&&) = delete;
    Secret& operator=(Secret&&) = delete;
    ~Secret() { ::explicit_bzero(bytes.data(), bytes.size()); }
};

// Strict RFC 4648 base64 as HAProxy's base64dec takes it: length a multiple of 4, padding only
// at the end ("xx==" or "xxx="). False when it is not that, or decodes to more than kLongKey.
bool decode(std::string_view text, Secret& out) {
    if (text.empty() || text.size() % 4 != 0) {
        return false;
    }
    std::size_t padding = 0;
    if (text.back() == '=') {
        padding = text[text.size() - 2] == '=' ? 2 : 1;
    }
    if (text.size() / 4 * 3 - padding > out.bytes.size()) {
        return false;
    }
    std::array<int, 4> group{};
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        for (std::size_t j = 0; j < 4; ++j) {
            const bool pad_here = last && j >= 4 - padding;
            group[j] = pad_here ? 0 : sextet(text[i + j]);
            if (group[j] < 0 || (pad_here && text[i + j] != '=')) {
                return false;
            }
        }
        const std::array<int, 3> bytes{(group[0] << 2) | (group[1] >> 4),
                                       ((group[1] & 0xf) << 4) | (group[2] >> 2),
                                       ((group[2] & 0x3) << 6) | group[3]};
        const std::size_t keep = last ? 3 - padding : 3;
        for (std::size_t k = 0; k < keep; ++k) {
            out.bytes[out.size++] = static_cast<unsigned char>(bytes[k] & 0xff);
        }
    }
    group.fill(0);
    return true;
}

}  // namespace

TicketKey::~TicketKey() {
    ::explicit_bzero(aes.data(), aes.size());
    ::explicit_bzero(hmac.data(), hmac.size());
}

TicketKeyFile parse_ticket_keys(std::string_view text) {
    TicketKeyFile out;
    std::size_t length = 0;  // of every key, set by the first line (HAProxy's rule)
    std::uint32_t line = 0;
    std::vector<TicketKey> keys;
    while (!text.empty()) {
        ++line;
        const std::size_t end = text.find('\n');
        std::string_view row = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (!row.empty() && row.back() == '\r') {
            row.remove_suffix(1);
        }
        const auto fail = [&out, line](std::string message) {
            out.keys.clear();
            out.error = std::move(message);
            out.line = line;
            return std::move(out);
        };
        if (row.empty()) {
            return fail("empty line: one base64 key per line, nothing else");
        }
        Secret secret;
        if (!decode(row, secret)) {
            return fail(
                "not a base64 key of 48 or 80 bytes (one key per line, e.g. from "
                "`openssl rand -base64 80`)");
        }
        if (secret.size != kShortKey && secret.size != kLongKey) {
            return fail("the key is " + std::to_string(secret.size) +
                        " bytes; a key is 48 bytes (AES-128) or 80 bytes (AES-256)");
        }
        if (length == 0) {
            length = secret.size;
        } else if (secret.size != length) {
            return fail("the key is " + std::to_string(secret.size) + " bytes, the first was " +
                        std::to_string(length) + ": every key must have the same length");
        }
        TicketKey key;
        key.secret_bytes = (secret.size - kNameBytes) / 2;
        const auto* at = secret.bytes.data();
        std::copy_n(at, kNameBytes, key.name.begin());
        std::copy_n(at + kNameBytes, key.secret_bytes, key.aes.begin());
        std::copy_n(at + kNameBytes + key.secret_bytes, key.secret_bytes, key.hmac.begin());
        keys.push_back(key);
        if (keys.size() > kTicketKeysUsed) {
            keys.erase(keys.begin());
        }
    }
    if (keys.size() < kTicketKeysUsed) {
        out.error = "has " + std::to_string(keys.size()) + " key(s); at least " +
                    std::to_string(kTicketKeysUsed) +
                    " are needed (the last three are used: the penultimate encrypts, all three "
                    "decrypt)";
        return out;
    }
    out.keys = std::move(keys);
    return out;
}

}  // namespace postern::conf
