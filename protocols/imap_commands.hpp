#pragma once
// The IMAP commands the backend has not completed yet, oldest first. Every command ends with a
// tagged status response (RFC 9051 §2.2.2, §7.1), but nothing stops a client from reusing a
// tag ("a NOOP" then "a LOGIN u p"): a completion answers the oldest outstanding command with its
// tag, so the login is known to succeed from its own OK only, never from the NOOP's. The
// machine adds only commands with a valid tag: Dovecot answers any other with an untagged BAD
// and never completes it. Bounded (kMax): the machine holds the client back while it is full.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::protocols::imap_commands {

// What the machine does when the command completes with OK.
enum class Kind : std::uint8_t {
    Other,
    Login,         // LOGIN, AUTHENTICATE: authenticated, Passthrough
    Authenticate,  // also ends the SASL exchange, whatever the status
    Logout,        // the session is over
};

[[nodiscard]] Kind kind_of(std::string_view command) noexcept;

struct Completed {
    Kind kind;
    bool newest;  // the command the client was still sending (e.g. awaiting its literal's "+")
};

class Outstanding {
public:
    static constexpr std::size_t kMax = 32;

    [[nodiscard]] bool full() const noexcept { return commands_.size() >= kMax; }
    [[nodiscard]] bool empty() const noexcept { return commands_.empty(); }
    [[nodiscard]] bool has(std::string_view tag) const noexcept;
    void add(std::string_view tag, Kind kind);
    // Removes the oldest command with this tag; std::nullopt when none is outstanding.
    [[nodiscard]] std::optional<Completed> complete(std::string_view tag);

private:
    struct Command {
        std::string tag;
        Kind kind;
    };
    std::vector<Command> commands_;  // at most kMax: linear scans stay cheap
};

}  // namespace postern::protocols::imap_commands
