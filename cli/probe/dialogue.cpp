#include "cli/probe/dialogue.hpp"

#include "protocols/smtp_reply.hpp"
#include "protocols/text.hpp"

#include <algorithm>
#include <utility>

namespace postern::cli::probe {

namespace {

using protocols::parse_smtp_line;
using protocols::text::iequals;
using protocols::text::istarts_with;
using protocols::text::split_word;

// Tags of the three IMAP commands the probe sends.
constexpr std::string_view kTagStartTls = "a1";
constexpr std::string_view kTagCapability = "a2";
constexpr std::string_view kTagLogout = "a3";

std::string quote(std::string_view line) {
    if (line.size() <= Dialogue::kMaxQuoted) {
        return std::string{line};
    }
    return std::string{line.substr(0, Dialogue::kMaxQuoted)} + "...";
}

std::vector<std::string> split_atoms(std::string_view s) {
    std::vector<std::string> out;
    while (true) {
        const auto words = split_word(s);
        if (words.first.empty()) {
            break;
        }
        out.emplace_back(words.first);
        s = words.rest;
    }
    return out;
}

}  // namespace

std::optional<Protocol> protocol_of_greeting(std::string_view line) noexcept {
    if (line.starts_with("* ")) {
        const auto status = split_word(line.substr(2)).first;
        if (iequals(status, "OK") || iequals(status, "PREAUTH") || iequals(status, "BYE")) {
            return Protocol::Imap;
        }
        return std::nullopt;
    }
    const auto first = split_word(line).first;
    if (first == "+OK" || first == "-ERR") {
        return Protocol::Pop3;
    }
    if (parse_smtp_line(line)) {
        return Protocol::Smtp;
    }
    return std::nullopt;
}

std::optional<std::vector<std::string>> imap_response_capabilities(std::string_view line) {
    const auto tag = split_word(line);
    const auto status = split_word(tag.rest);
    std::string_view rest = status.rest;
    if (!rest.starts_with('[') || !istarts_with(rest.substr(1), "CAPABILITY ")) {
        return std::nullopt;
    }
    rest.remove_prefix(1 + std::string_view{"CAPABILITY "}.size());
    const auto end = rest.find(']');
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    return split_atoms(rest.substr(0, end));
}

Dialogue::Dialogue(std::optional<Protocol> starttls, std::string ehlo_name)
    : starttls_(starttls),
      protocol_(starttls),
      ehlo_name_(std::move(ehlo_name)),
      state_(starttls ? State::PlainGreeting : State::Handshake) {}

Step Dialogue::start() const {
    return {{}, state_ == State::Handshake ? Then::StartTls : Then::Read, {}};
}

Step Dialogue::fail(std::string message) {
    state_ = State::Done;
    return {{}, Then::Fail, std::move(message)};
}

Step Dialogue::fail_reply(std::string_view what, std::string_view line) {
    return fail(std::string{what} + ": " + quote(line));
}

Step Dialogue::start_tls() {
    state_ = State::Handshake;
    return {{}, Then::StartTls, {}};
}

Step Dialogue::ask_capabilities() {
    state_ = State::Capabilities;
    switch (*protocol_) {
        case Protocol::Smtp:
            return {"EHLO " + ehlo_name_ + "\r\n", Then::Read, {}};
        case Protocol::Imap:
            return {std::string{kTagCapability} + " CAPABILITY\r\n", Then::Read, {}};
        case Protocol::Pop3:
            return {"CAPA\r\n", Then::Read, {}};
    }
    return fail("internal error: no protocol");
}

Step Dialogue::goodbye() {
    capabilities_read_ = true;
    state_ = State::Goodbye;
    switch (*protocol_) {
        case Protocol::Smtp:
        case Protocol::Pop3:
            return {"QUIT\r\n", Then::Read, {}};
        case Protocol::Imap:
            return {std::string{kTagLogout} + " LOGOUT\r\n", Then::Read, {}};
    }
    return fail("internal error: no protocol");
}

Step Dialogue::on_tls_ready() {
    if (state_ != State::Handshake) {
        return fail("internal error: TLS ready outside the handshake");
    }
    if (starttls_) {
        // RFC 3207 §4.2, RFC 9051 §6.2.1, RFC 2595 §4: no greeting after STARTTLS, and what the
        // server said before TLS is forgotten, so ask again.
        return ask_capabilities();
    }
    state_ = State::TlsGreeting;
    return {};
}

Step Dialogue::on_eof() {
    switch (state_) {
        case State::Goodbye:
        case State::Done:
            state_ = State::Done;
            return {{}, Then::Close, {}};
        case State::PlainGreeting:
            return fail("the server closed the connection before its greeting");
        case State::PlainEhlo:
            return fail("the server closed the connection after EHLO");
        case State::PlainStartTls:
            return fail("the server closed the connection after STARTTLS");
        case State::Handshake:
            return fail("the server closed the connection before the TLS handshake");
        case State::TlsGreeting:
            return fail(
                "the server closed the connection after the TLS handshake, before a greeting");
        case State::Capabilities:
        case State::CapaList:
            return fail("the server closed the connection while listing its capabilities");
    }
    return fail("the server closed the connection");
}

Step Dialogue::on_line(std::string_view line) {
    switch (state_) {
        case State::Done:
            return {{}, Then::Close, {}};
        case State::Handshake:
            return fail("internal error: a line during the TLS handshake");
        case State::TlsGreeting:
            if (!protocol_) {
                protocol_ = protocol_of_greeting(line);
                if (!protocol_) {
                    return fail_reply("not an SMTP, IMAP or POP3 greeting", line);
                }
            }
            break;
        default:
            break;
    }
    switch (*protocol_) {
        case Protocol::Smtp:
            return on_smtp(line);
        case Protocol::Imap:
            return on_imap(line);
        case Protocol::Pop3:
            return on_pop3(line);
    }
    return fail("internal error: no protocol");
}

Step Dialogue::on_smtp(std::string_view line) {
    const auto parsed = parse_smtp_line(line);
    if (!parsed) {
        return fail_reply("malformed SMTP reply", line);
    }
    if (reply_lines_ == 0) {
        reply_code_ = parsed->code;
    } else if (parsed->code != reply_code_) {
        return fail_reply("SMTP reply changes its code between lines", line);
    }
    if (++reply_lines_ > kMaxReplyLines) {
        return fail("SMTP reply has more than 1000 lines");
    }
    reply_.emplace_back(parsed->text);
    if (!parsed->last) {
        return {};
    }
    const int code = reply_code_;
    std::vector<std::string> reply = std::exchange(reply_, {});
    reply_lines_ = 0;
    // extension lines of an EHLO reply: all but the first (RFC 5321 §4.1.1.1)
    const auto extensions = [&reply] {
        return std::vector<std::string>(reply.begin() + 1, reply.end());
    };

    switch (state_) {
        case State::PlainGreeting:
            if (code != 220) {
                return fail_reply("the server's greeting is not 220", line);
            }
            state_ = State::PlainEhlo;
            return {"EHLO " + ehlo_name_ + "\r\n", Then::Read, {}};
        case State::PlainEhlo: {
            if (code != 250) {
                return fail_reply("the server refused EHLO", line);
            }
            const auto ext = extensions();
            const bool offered = std::any_of(ext.begin(), ext.end(), [](const std::string& e) {
                return iequals(split_word(e).first, "STARTTLS");
            });
            if (!offered) {
                std::string list;
                for (const auto& e : ext) {
                    list += list.empty() ? "" : ", ";
                    list += split_word(e).first;
                }
                return fail("the server does not offer STARTTLS (EHLO lists: " +
                            quote(list.empty() ? "nothing" : list) + ")");
            }
            state_ = State::PlainStartTls;
            return {"STARTTLS\r\n", Then::Read, {}};
        }
        case State::PlainStartTls:
            if (code != 220) {
                return fail_reply("the server refused STARTTLS", line);
            }
            return start_tls();
        case State::TlsGreeting:
            if (code != 220) {
                return fail_reply("the server's greeting after the TLS handshake is not 220", line);
            }
            return ask_capabilities();
        case State::Capabilities:
            if (code != 250) {
                return fail_reply("the server refused EHLO after TLS", line);
            }
            capabilities_ = extensions();
            return goodbye();
        case State::Goodbye:
            state_ = State::Done;
            return {{}, Then::Close, {}};
        case State::Handshake:
        case State::CapaList:
        case State::Done:
            break;
    }
    return fail("internal error: SMTP reply in an unexpected state");
}

Step Dialogue::on_imap(std::string_view line) {
    const auto tag = split_word(line);
    const auto status = split_word(tag.rest).first;
    const bool untagged = tag.first == "*";
    const bool ok = iequals(status, "OK");

    switch (state_) {
        case State::PlainGreeting:
        case State::TlsGreeting: {
            const bool plain = state_ == State::PlainGreeting;
            if (!untagged) {
                return fail_reply("not an IMAP greeting", line);
            }
            if (iequals(status, "BYE")) {
                return fail_reply("the server refused the connection", line);
            }
            auto caps = imap_response_capabilities(line);
            if (ok) {
                if (plain && caps &&
                    std::none_of(caps->begin(), caps->end(),
                                 [](const std::string& c) { return iequals(c, "STARTTLS"); })) {
                    return fail_reply("the server does not offer STARTTLS", line);
                }
            } else if (iequals(status, "PREAUTH")) {
                if (plain) {
                    // RFC 9051 §6.2.1: STARTTLS is only valid in the not-authenticated state.
                    return fail_reply("the server greets with PREAUTH, so STARTTLS is not allowed",
                                      line);
                }
            } else {
                return fail_reply("not an IMAP greeting", line);
            }
            if (plain) {
                state_ = State::PlainStartTls;
                return {std::string{kTagStartTls} + " STARTTLS\r\n", Then::Read, {}};
            }
            if (caps) {
                greeting_capabilities_ = std::move(*caps);
            }
            return ask_capabilities();
        }
        case State::PlainStartTls:
            if (untagged) {
                return {};
            }
            if (tag.first != kTagStartTls) {
                return fail_reply("unexpected reply to STARTTLS", line);
            }
            if (!ok) {
                return fail_reply("the server refused STARTTLS", line);
            }
            return start_tls();
        case State::Capabilities:
            if (untagged) {
                if (iequals(status, "CAPABILITY")) {
                    auto atoms = split_atoms(split_word(tag.rest).rest);
                    capabilities_.insert(capabilities_.end(), atoms.begin(), atoms.end());
                    if (capabilities_.size() > kMaxReplyLines) {
                        return fail("the server lists more than 1000 capabilities");
                    }
                } else if (iequals(status, "BYE")) {
                    return fail_reply("the server ended the session", line);
                }
                return {};
            }
            if (tag.first != kTagCapability) {
                return fail_reply("unexpected reply to CAPABILITY", line);
            }
            if (capabilities_.empty()) {
                if (auto caps = imap_response_capabilities(line)) {
                    capabilities_ = std::move(*caps);
                } else {
                    capabilities_ = std::move(greeting_capabilities_);
                }
            }
            if (!ok && capabilities_.empty()) {
                return fail_reply("the server refused CAPABILITY", line);
            }
            return goodbye();
        case State::Goodbye:
            if (untagged) {
                return {};
            }
            state_ = State::Done;
            return {{}, Then::Close, {}};
        case State::PlainEhlo:
        case State::Handshake:
        case State::CapaList:
        case State::Done:
            break;
    }
    return fail("internal error: IMAP reply in an unexpected state");
}

Step Dialogue::on_pop3(std::string_view line) {
    const auto first = split_word(line).first;
    const bool ok = first == "+OK";

    switch (state_) {
        case State::PlainGreeting:
        case State::TlsGreeting:
            if (!ok) {
                return fail_reply(
                    first == "-ERR" ? "the server refused the connection" : "not a POP3 greeting",
                    line);
            }
            if (state_ == State::PlainGreeting) {
                state_ = State::PlainStartTls;
                return {"STLS\r\n", Then::Read, {}};
            }
            return ask_capabilities();
        case State::PlainStartTls:
            if (!ok) {
                return fail_reply("the server refused STLS", line);
            }
            return start_tls();
        case State::Capabilities:
            if (ok) {
                state_ = State::CapaList;
                return {};
            }
            // RFC 2449 is an extension: a server without CAPA is still a working server.
            capabilities_note_ = "the server does not support CAPA: " + quote(line);
            return goodbye();
        case State::CapaList:
            if (line == ".") {
                return goodbye();
            }
            if (capabilities_.size() >= kMaxReplyLines) {
                return fail("the server lists more than 1000 capabilities");
            }
            // RFC 1939 §3: a multi-line response byte-stuffs lines starting with '.'
            capabilities_.emplace_back(line.starts_with('.') ? line.substr(1) : line);
            return {};
        case State::Goodbye:
            state_ = State::Done;
            return {{}, Then::Close, {}};
        case State::PlainEhlo:
        case State::Handshake:
        case State::Done:
            break;
    }
    return fail("internal error: POP3 reply in an unexpected state");
}

}  // namespace postern::cli::probe
