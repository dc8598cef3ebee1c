#pragma once
// tls.ticket_keys_file: session-ticket keys in HAProxy's `tls-ticket-keys` format, byte for
// byte, so one file (and one rotation job) serves HAProxy and postern alike. One key per line,
// standard base64 with padding, nothing else on the line (a final newline, and a CR before
// it, are allowed; an empty line is not). Each key decodes to 48 or 80 bytes, all of one length
// (HAProxy's struct tls_sess_key_128 / _256):
//   48: name[16] | AES-128-CBC key[16] | HMAC-SHA256 key[16]
//   80: name[16] | AES-256-CBC key[32] | HMAC-SHA256 key[32]
// At least kTicketKeysUsed lines; only the last kTicketKeysUsed are used: the penultimate
// encrypts, all of them decrypt. So a rotation appends one line: the old encryption key still
// decrypts (as the last-but-two), the former newest starts encrypting, and the new one is
// already accepted by every instance that has read the file before it starts encrypting.
// Pure: the bytes come from a conf::FileSnapshot; the keys are wiped when freed.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::conf {

// HAProxy's TLS_TICKETS_NO default.
inline constexpr std::size_t kTicketKeysUsed = 3;

struct TicketKey {
    std::array<unsigned char, 16> name{};  // sent in clear at the start of every ticket
    std::array<unsigned char, 32> aes{};   // the first secret_bytes are the key
    std::array<unsigned char, 32> hmac{};  // the first secret_bytes are the key
    std::size_t secret_bytes = 0;          // 16 (48-byte lines) or 32 (80-byte lines)

    TicketKey() = default;
    TicketKey(const TicketKey&) = default;
    TicketKey& operator=(const TicketKey&) = default;
    TicketKey(TicketKey&&) = default;
    TicketKey& operator=(TicketKey&&) = default;
    ~TicketKey();  // wipes the secrets
};

struct TicketKeyFile {
    // The last kTicketKeysUsed keys, in file order: keys[1] (the penultimate) encrypts.
    std::vector<TicketKey> keys;
    std::string error;       // empty when the text is a valid key file
    std::uint32_t line = 0;  // 1-based line the error is about; 0: the file as a whole
};

// Never throws for bad input; never puts key bytes in `error`.
[[nodiscard]] TicketKeyFile parse_ticket_keys(std::string_view text);

}  // namespace postern::conf
