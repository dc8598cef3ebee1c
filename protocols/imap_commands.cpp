#include "protocols/imap_commands.hpp"

#include "protocols/text.hpp"

#include <algorithm>

namespace postern::protocols::imap_commands {

Kind kind_of(std::string_view command) noexcept {
    if (text::iequals(command, "LOGIN")) {
        return Kind::Login;
    }
    if (text::iequals(command, "AUTHENTICATE")) {
        return Kind::Authenticate;
    }
    return text::iequals(command, "LOGOUT") ? Kind::Logout : Kind::Other;
}

bool Outstanding::has(std::string_view tag) const noexcept {
    return std::any_of(commands_.begin(), commands_.end(),
                       [&](const Command& c) { return c.tag == tag; });
}

void Outstanding::add(std::string_view tag, Kind kind) {
    commands_.push_back({std::string(tag), kind});
}

std::optional<Completed> Outstanding::complete(std::string_view tag) {
    const auto it = std::find_if(commands_.begin(), commands_.end(),
                                 [&](const Command& c) { return c.tag == tag; });
    if (it == commands_.end()) {
        return std::nullopt;
    }
    const Completed done{it->kind, it + 1 == commands_.end()};
    commands_.erase(it);
    return done;
}

}  // namespace postern::protocols::imap_commands
