#include "protocols/imap.hpp"

#include "protocols/capabilities.hpp"
#include "protocols/forwarding.hpp"
#include "protocols/imap_commands.hpp"
#include "protocols/imap_id.hpp"
#include "protocols/imap_syntax.hpp"
#include "protocols/relay_machine.hpp"
#include "protocols/replies.hpp"
#include "protocols/text.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace postern::protocols {

namespace {

using imap_commands::Kind;
using imap_syntax::Literal;
using imap_syntax::parse_literal;
using imap_syntax::valid_tag;
using text::iequals;

class ImapMachine final : public RelayMachine {
public:
    using RelayMachine::RelayMachine;

private:
    std::size_t client_content(std::string_view data, Actions& out) override;
    // A synchronizing literal is sent only after "+" (RFC 9051 §4.3): until then the client is
    // waiting too, and what it might send is not what we would take it for.
    [[nodiscard]] bool client_waits() const noexcept override { return awaiting_continuation_; }
    [[nodiscard]] bool command_under_way() const noexcept override {
        return !commands_.empty() || client_in_command_ || client_literal_left_ > 0 ||
               awaiting_continuation_ || backend_literal_left_ > 0 || backend_in_response_;
    }
    LineStep client_line(std::string_view line, Actions& out) override;
    std::size_t backend_content(std::string_view data, Actions& out) override;
    void backend_line(std::string_view line, Actions& out) override;
    [[nodiscard]] std::string pre_tls_greeting() const override {
        return replies::imap_greeting(settings_.hostname);
    }
    PreTlsStep pre_tls_line(std::string_view line, Actions& out) override;
    [[nodiscard]] std::string_view dialogue_state_name() const noexcept override { return "auth"; }

    LineStep command_line(std::string_view line, std::string_view tag, std::string_view command,
                          Literal literal, Actions& out);
    void forward(std::string_view line, Literal literal, Actions& out);
    LineStep starttls(std::string_view tag, Literal literal, Actions& out);
    LineStep refuse(std::string_view tag, Literal literal, std::string_view reply, Actions& out);
    LineStep refused_continuation(Literal literal, Actions& out);
    void relay_to_client(Actions& out, std::string_view bytes) const;
    void backend_greeting(std::string_view line, Actions& out);
    void greeting_done(Actions& out);
    void forwarding_response(std::string_view line, Actions& out);
    void backend_response(std::string_view line, Actions& out);
    void tagged_response(std::string_view tag, std::string_view status, Actions& out);
    void relay_filtered(std::string_view line, Actions& out) const;

    // A reply of ours must not land inside a backend response that is partly relayed, nor
    // before the backend's completion of an earlier command with the same tag, which the client
    // would take for ours.
    [[nodiscard]] bool reply_must_wait(std::string_view tag) const noexcept {
        return backend_literal_left_ > 0 || backend_in_response_ || commands_.has(tag);
    }

    imap_commands::Outstanding commands_;
    // A command refused once its last line is read (its non-synchronizing literals are dropped
    // on the way): its tag, never empty while it is read, and the reply it gets.
    std::string refused_tag_;
    std::string_view refusal_;
    std::uint64_t client_literal_left_ = 0;
    std::uint64_t awaited_literal_ = 0;  // size of a {n} literal sent once "+" arrives
    std::uint64_t backend_literal_left_ = 0;
    bool client_in_command_ = false;      // the next client line continues a command
    bool awaiting_continuation_ = false;  // the client waits for "+" before its literal
    bool backend_in_response_ = false;    // the next backend line continues a response
    bool dropping_response_ = false;      // the response being read is the dropped greeting
    bool dropping_literal_ = false;       // client_literal_left_ is a refused command's
    bool preauth_ = false;                // the greeting was PREAUTH (RFC 9051 §7.1.4)
};

// The not-authenticated state as a STARTTLS listener offers it (RFC 9051 §6.1, §6.2; RFC 2595
// §3.1): CAPABILITY, NOOP, LOGOUT and STARTTLS answered here; LOGIN and AUTHENTICATE refused
// with PRIVACYREQUIRED (RFC 5530) whatever require_tls says, anything else BAD. With
// require_tls off, everything else goes to the backend in plaintext.
ImapMachine::PreTlsStep ImapMachine::pre_tls_line(std::string_view line, Actions& out) {
    const std::string_view content = text::strip_eol(line);
    const Literal literal = parse_literal(content, /*client=*/true);
    if (literal.kind == Literal::Kind::TooLarge) {
        close_with(out, replies::kImapBadLiteral, CloseReason::ProtocolError);
        return PreTlsStep::Closed;
    }
    // Plain variables, not structured bindings: the lambda below captures the tag.
    const text::Words tag_rest = text::split_word(content);
    const std::string_view tag = tag_rest.first;
    const auto [command, args] = text::split_word(tag_rest.rest);
    const bool tag_ok = valid_tag(tag);
    const bool local = iequals(command, "CAPABILITY") || iequals(command, "NOOP") ||
                       iequals(command, "LOGOUT") || iequals(command, "STARTTLS");
    const bool login = iequals(command, "LOGIN") || iequals(command, "AUTHENTICATE");
    if (!settings_.require_tls && tag_ok && !command.empty() && !local && !login) {
        return PreTlsStep::NeedBackend;  // its literal, if any, is the relay's business
    }
    if (literal.kind == Literal::Kind::NonSync) {
        // Its bytes follow at once and would be read as commands; LITERAL+ is not offered.
        close_with(out, replies::kImapProtocolError, CloseReason::ProtocolError);
        return PreTlsStep::Closed;
    }
    // A synchronizing literal is never sent: the client waits for "+", and gets our tagged
    // answer instead (§4.3).
    if (!tag_ok) {
        send_to_client(out, replies::kImapBadTag);
        return PreTlsStep::Refused;
    }
    const auto tagged = [&](std::string_view text) {
        send_to_client(out, tag);
        send_to_client(out, text);
    };
    if (command.empty()) {
        tagged(replies::kImapMissingCommandAfterTag);
        return PreTlsStep::Refused;
    }
    if (local && (!text::split_word(args).first.empty() || literal.kind != Literal::Kind::None)) {
        tagged(replies::kImapArgumentsAfterTag);
        return PreTlsStep::Refused;
    }
    if (iequals(command, "STARTTLS")) {
        tagged(replies::kImapStartTlsAfterTag);
        return PreTlsStep::StartTls;
    }
    if (iequals(command, "CAPABILITY")) {
        send_to_client(out, "* CAPABILITY ");
        send_to_client(out, replies::kImapPreTlsCapabilities);
        send_to_client(out, "\r\n");
        tagged(replies::kImapCapabilityAfterTag);
        return PreTlsStep::Answered;
    }
    if (iequals(command, "NOOP")) {
        tagged(replies::kImapNoopAfterTag);
        return PreTlsStep::Answered;
    }
    if (iequals(command, "LOGOUT")) {
        send_to_client(out, replies::kImapLogoutBye);
        tagged(replies::kImapLogoutAfterTag);
        close(out, CloseReason::ClientQuit);
        return PreTlsStep::Closed;
    }
    tagged(login ? replies::kImapPrivacyRequiredAfterTag : replies::kImapNotBeforeTlsAfterTag);
    return PreTlsStep::Refused;
}

void ImapMachine::relay_to_client(Actions& out, std::string_view bytes) const {
    if (!dropping_response_) {
        send_to_client(out, bytes);
    }
}

// A literal's bytes (RFC 9051 §4.3): relayed as they are, never read as lines.
std::size_t ImapMachine::client_content(std::string_view data, Actions& out) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(client_literal_left_, data.size()));
    if (!dropping_literal_) {
        send_to_backend(out, data.substr(0, n));
    }
    client_literal_left_ -= n;
    return n;
}

ImapMachine::LineStep ImapMachine::client_line(std::string_view line, Actions& out) {
    const std::string_view content = text::strip_eol(line);
    const Literal literal = parse_literal(content, /*client=*/true);
    if (literal.kind == Literal::Kind::TooLarge) {
        close_with(out, replies::kImapBadLiteral, CloseReason::ProtocolError);
        return LineStep::Consumed;
    }
    if (!refused_tag_.empty()) {
        return refused_continuation(literal, out);
    }
    if (client_in_command_) {
        forward(line, literal, out);
        return LineStep::Consumed;
    }
    const auto [tag, rest] = text::split_word(content);
    return command_line(line, tag, text::split_word(rest).first, literal, out);
}

// The first line of a command.
ImapMachine::LineStep ImapMachine::command_line(std::string_view line, std::string_view tag,
                                                std::string_view command, Literal literal,
                                                Actions& out) {
    if (iequals(command, "STARTTLS")) {
        return starttls(tag, literal, out);
    }
    const Kind kind = imap_commands::kind_of(command);
    if (!client_on_tls() && (kind == Kind::Login || kind == Kind::Authenticate)) {
        // require_tls = false and the client went on in plaintext: its credentials stay here.
        return refuse(tag, literal, replies::kImapPrivacyRequiredAfterTag, out);
    }
    // The client's ID, without the fields only a trusted proxy may send (imap_id.hpp). One with
    // a literal is refused: real clients never send one.
    imap_id::Filtered id{imap_id::Filtered::Verdict::Unchanged, {}};
    if (iequals(command, "ID")) {
        if (literal.kind != Literal::Kind::None) {
            return refuse(tag, literal, replies::kImapIdLiteralAfterTag, out);
        }
        id = imap_id::filter_command(line);
        if (id.verdict == imap_id::Filtered::Verdict::Invalid) {
            return refuse(tag, literal, replies::kImapIdInvalidAfterTag, out);
        }
    }
    if (valid_tag(tag)) {
        if (commands_.full()) {
            return LineStep::Stall;
        }
        commands_.add(tag, kind);
        if (kind == Kind::Authenticate && literal.kind == Literal::Kind::None) {
            sasl_start();  // the client answers one line per "+" (§6.2.2)
        }
    }
    no_error();
    forward(id.verdict == imap_id::Filtered::Verdict::Rewritten ? std::string_view(id.line) : line,
            literal, out);
    return LineStep::Consumed;
}

void ImapMachine::forward(std::string_view line, Literal literal, Actions& out) {
    send_to_backend(out, line);
    client_in_command_ = literal.kind != Literal::Kind::None;
    if (literal.kind == Literal::Kind::NonSync) {
        client_literal_left_ = literal.size;
    } else if (literal.kind == Literal::Kind::Sync) {
        awaiting_continuation_ = true;
        awaited_literal_ = literal.size;
    }
}

// Never forwarded: the backend would start a TLS handshake inside ours.
ImapMachine::LineStep ImapMachine::starttls(std::string_view tag, Literal literal, Actions& out) {
    if (reply_must_wait(tag)) {
        return LineStep::Stall;
    }
    if (literal.kind != Literal::Kind::None) {
        close_with(out, replies::kImapProtocolError, CloseReason::ProtocolError);
        return LineStep::Consumed;
    }
    send_to_client(out, tag);
    send_to_client(out, client_on_tls() ? replies::kImapTlsActiveAfterTag
                                        : replies::kImapTlsUnavailableAfterTag);
    count_error(out);
    return LineStep::Consumed;
}

// A command answered here and never forwarded: at once, a synchronizing literal included (the
// client waits for "+" and gets our reply instead, RFC 9051 §4.3); with a non-synchronizing one,
// once its bytes and the rest of the command have been read and dropped. `tag` is never empty:
// the command is its second word.
ImapMachine::LineStep ImapMachine::refuse(std::string_view tag, Literal literal,
                                          std::string_view reply, Actions& out) {
    refused_tag_.assign(tag);
    refusal_ = reply;
    return refused_continuation(literal, out);
}

// A line of the command being refused: its first, or one after a non-synchronizing literal.
ImapMachine::LineStep ImapMachine::refused_continuation(Literal literal, Actions& out) {
    dropping_literal_ = literal.kind == Literal::Kind::NonSync;
    if (dropping_literal_) {
        client_literal_left_ = literal.size;  // its bytes follow at once
        return LineStep::Consumed;
    }
    if (reply_must_wait(refused_tag_)) {
        return LineStep::Stall;  // the line is offered again: refused_tag_ stays
    }
    if (valid_tag(refused_tag_)) {
        send_to_client(out, refused_tag_);
        send_to_client(out, refusal_);
    } else {
        send_to_client(out, replies::kImapBadTag);
    }
    refused_tag_.clear();
    count_error(out);
    return LineStep::Consumed;
}

// e.g. a FETCH body: relayed, never read as lines
std::size_t ImapMachine::backend_content(std::string_view data, Actions& out) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(backend_literal_left_, data.size()));
    relay_to_client(out, data.substr(0, n));
    backend_literal_left_ -= n;
    return n;
}

void ImapMachine::backend_line(std::string_view line, Actions& out) {
    const bool continues = backend_in_response_;
    const std::string_view content = text::strip_eol(line);
    // Only where the grammar has literals (imap_syntax.hpp): the lines after a status response
    // whose text ends in "{n}" are still read, and filtered, as responses.
    const Literal literal = continues || imap_syntax::response_may_open_literal(content)
                                ? parse_literal(content, /*client=*/false)
                                : Literal{};
    if (literal.kind == Literal::Kind::TooLarge) {
        backend_unreadable(out);
        return;
    }
    dropping_response_ = dropping_response_ && continues;
    backend_in_response_ = literal.kind != Literal::Kind::None;
    backend_literal_left_ = literal.size;
    if (continues) {
        relay_to_client(out, line);
    } else if (phase() == Phase::Greeting) {
        backend_greeting(line, out);
    } else if (phase() == Phase::Forwarding) {
        forwarding_response(line, out);
    } else {
        backend_response(line, out);
    }
}

// One line: a status response never carries a literal.
void ImapMachine::backend_greeting(std::string_view line, Actions& out) {
    const auto [star, rest] = text::split_word(text::strip_eol(line));
    // Anything but an untagged OK/PREAUTH/BYE is not an IMAP server (RFC 9051 §7.1).
    const std::string_view status = star == "*" ? text::split_word(rest).first : "";
    preauth_ = iequals(status, "PREAUTH");  // already authenticated
    if (iequals(status, "OK") || preauth_) {
        if (preauth_ && !relay_greeting()) {
            // The client was told it is not authenticated and will LOGIN: it cannot follow
            // a backend that skipped that state. A backend misconfiguration.
            close_with(out, replies::kImapBackendUnavailable, CloseReason::ProtocolError);
            return;
        }
        if (!relay_greeting()) {
            dropping_response_ = true;  // the client has had postern's greeting
        } else if (auto filtered = capabilities::filter_imap_line(line);
                   !greet_client(out, filtered ? std::string_view(*filtered) : line)) {
            backend_unreadable(out);
            return;
        }
        if (!start_forwarding(out)) {
            greeting_done(out);
        }
    } else if (iequals(status, "BYE")) {  // §7.1.5: the backend refuses us
        send_to_client(out, line);
        backend_refused(out);
    } else {
        close_with(out, replies::kImapBackendUnavailable, CloseReason::ProtocolError);
    }
}

// PREAUTH: the authenticated state, where STARTTLS is no longer valid (§6.2.1) and nothing
// needs us.
void ImapMachine::greeting_done(Actions& out) {
    if (preauth_) {
        passthrough(out);
    } else {
        greeting_relayed();
    }
}

// The reply to our ID (forwarding.hpp): untagged "* ID" data, then our tagged status, none of
// it for the client.
void ImapMachine::forwarding_response(std::string_view line, Actions& out) {
    dropping_response_ = true;  // literals in "* ID" too
    const auto [tag, rest] = text::split_word(text::strip_eol(line));
    const std::string_view status = text::split_word(rest).first;
    if (tag == forwarding::kImapTag) {
        if (iequals(status, "OK")) {
            forwarding_accepted(out);
            greeting_done(out);
        } else {
            forwarding_refused(out);  // NO or BAD: the backend does not take ID from us
        }
    } else if (tag == "*" && iequals(status, "BYE")) {
        close_with(out, replies::kImapBackendUnavailable, CloseReason::BackendUnreachable);
    }
}

void ImapMachine::backend_response(std::string_view line, Actions& out) {
    const std::string_view content = text::strip_eol(line);
    if (!content.empty() && content.front() == '+') {  // continuation request (§7.5)
        if (awaiting_continuation_) {
            awaiting_continuation_ = false;
            client_literal_left_ = awaited_literal_;
        } else if (sasl_active()) {
            sasl_challenge();
        }
        send_to_client(out, line);
        return;
    }
    relay_filtered(line, out);
    const auto [tag, rest] = text::split_word(content);
    if (tag != "*") {
        tagged_response(tag, text::split_word(rest).first, out);
    }
}

void ImapMachine::tagged_response(std::string_view tag, std::string_view status, Actions& out) {
    const auto done = commands_.complete(tag);
    if (!done) {
        return;
    }
    if (awaiting_continuation_ && done->newest) {  // the literal was refused
        awaiting_continuation_ = false;
        client_in_command_ = false;
    }
    if (done->kind == Kind::Authenticate) {
        sasl_end();
    }
    if (!iequals(status, "OK")) {
        return;
    }
    switch (done->kind) {
        case Kind::Other:
            return;
        case Kind::Login:
        case Kind::Authenticate:
            // Authenticated state: STARTTLS is no longer a valid command (RFC 9051 §6.2.1),
            // so nothing after this needs us.
            passthrough(out);
            return;
        case Kind::Logout:
            close(out, CloseReason::ClientQuit);
            return;
    }
}

void ImapMachine::relay_filtered(std::string_view line, Actions& out) const {
    const auto reader =
        client_on_tls() ? capabilities::ImapReader::Tls : capabilities::ImapReader::Plaintext;
    if (auto filtered = capabilities::filter_imap_line(line, reader)) {
        send_to_client(out, *filtered);
    } else {
        send_to_client(out, line);
    }
}

}  // namespace

std::unique_ptr<Machine> make_imap_machine(const MachineSettings& settings) {
    return std::make_unique<ImapMachine>(settings);
}

}  // namespace postern::protocols
