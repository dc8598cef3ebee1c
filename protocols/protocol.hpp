#pragma once
// The three mail protocols postern speaks, one enum for every layer: the config's `protocol`
// key (conf/), the machines (protocols/), the daemon (proxy/) and `postern probe` (cli/).
// Their names are the config's and the CLI's words; one table here, so each spelling has one
// home.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace postern::protocols {

enum class Protocol : std::uint8_t { Imap, Pop3, Smtp };

// Every protocol, in the order the config's error messages list them.
inline constexpr std::array<Protocol, 3> kProtocols{Protocol::Imap, Protocol::Pop3, Protocol::Smtp};

// "imap" | "pop3" | "smtp"
[[nodiscard]] constexpr std::string_view to_string(Protocol protocol) noexcept {
    switch (protocol) {  // no default: -Wswitch flags a forgotten enumerator
        case Protocol::Imap:
            return "imap";
        case Protocol::Pop3:
            return "pop3";
        case Protocol::Smtp:
            return "smtp";
    }
    return "unknown";
}

// The protocol named `name` in ASCII case-insensitive comparison (the CLI's `--starttls smtp`);
// nullopt otherwise. The config is stricter (exact lower case) and matches to_string() itself.
[[nodiscard]] std::optional<Protocol> protocol_named(std::string_view name) noexcept;

}  // namespace postern::protocols
