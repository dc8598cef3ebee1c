#include "protocols/forwarding.hpp"

#include <array>

namespace postern::protocols::forwarding {

namespace {

bool is_ipv6(std::string_view address) noexcept {
    return address.find(':') != std::string_view::npos;
}

// An IMAP quoted string (RFC 9051 §4.3). The values are numeric addresses and ports; should
// anything else arrive, a control byte is dropped rather than sent inside our command.
void append_quoted(std::string& out, std::string_view value) {
    out.push_back('"');
    for (const char c : value) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            continue;
        }
        out.push_back(c);
    }
    out.push_back('"');
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    if (out.back() != '(') {
        out.push_back(' ');
    }
    append_quoted(out, name);
    out.push_back(' ');
    append_quoted(out, value);
}

}  // namespace

std::string xtext(std::string_view value) {
    static constexpr std::array<char, 16> kHex{'0', '1', '2', '3', '4', '5', '6', '7',
                                               '8', '9', 'A', 'B', 'C', 'D', 'E', 'F'};
    std::string out;
    out.reserve(value.size());
    for (const char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= '!' && c <= '~' && c != '+' && c != '=') {
            out.push_back(ch);
        } else {
            out.push_back('+');
            out.push_back(kHex[c >> 4U]);
            out.push_back(kHex[c & 0x0FU]);
        }
    }
    return out;
}

std::string smtp_xclient(const ClientIdentity& identity) {
    constexpr std::string_view kUnavailable = "[UNAVAILABLE]";
    std::string out = "XCLIENT ADDR=";
    if (identity.address.empty()) {
        out.append(kUnavailable);
    } else {
        out.append(is_ipv6(identity.address) ? "IPV6:" : "").append(xtext(identity.address));
    }
    out.append(" PORT=");
    out.append(identity.port == 0 ? std::string(kUnavailable) : std::to_string(identity.port));
    out.append(" NAME=").append(kUnavailable).append("\r\n");
    return out;
}

std::string pop3_xclient(const ClientIdentity& identity) {
    // Dovecot splits the arguments at SP and reads each value as it is, so a value must hold
    // no SP: xtext leaves a numeric address as it is and encodes anything that could split it.
    std::string out = "XCLIENT";
    const auto attribute = [&out](std::string_view name, std::string_view value) {
        if (!value.empty()) {
            out.append(" ").append(name).append("=").append(xtext(value));
        }
    };
    const auto port = [](std::uint16_t p) { return p == 0 ? std::string() : std::to_string(p); };
    attribute("ADDR", identity.address);
    attribute("PORT", port(identity.port));
    attribute("DESTADDR", identity.local_address);
    attribute("DESTPORT", port(identity.local_port));
    out.append("\r\n");
    return out;
}

std::string imap_id(const ClientIdentity& identity) {
    std::string out(kImapTag);
    out.append(" ID (");
    const auto field = [&out](std::string_view name, std::string_view value) {
        if (!value.empty()) {
            append_field(out, name, value);
        }
    };
    const auto port = [](std::uint16_t p) { return p == 0 ? std::string() : std::to_string(p); };
    field("x-originating-ip", identity.address);
    field("x-originating-port", port(identity.port));
    field("x-connected-ip", identity.local_address);
    field("x-connected-port", port(identity.local_port));
    if (out.back() == '(') {  // nothing known: "ID NIL" rather than an empty list
        out.resize(out.size() - 1);
        out.append("NIL");
    } else {
        out.push_back(')');
    }
    out.append("\r\n");
    return out;
}

std::string command(Protocol protocol, const ClientIdentity& identity) {
    switch (protocol) {
        case Protocol::Imap:
            return imap_id(identity);
        case Protocol::Pop3:
            return pop3_xclient(identity);
        case Protocol::Smtp:
            return smtp_xclient(identity);
    }
    return {};
}

}  // namespace postern::protocols::forwarding
