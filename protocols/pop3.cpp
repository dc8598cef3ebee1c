#include "protocols/pop3.hpp"

#include "protocols/capabilities.hpp"
#include "protocols/pending.hpp"
#include "protocols/relay_machine.hpp"
#include "protocols/replies.hpp"
#include "protocols/text.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace postern::protocols {

namespace {

using text::iequals;

constexpr std::size_t kMaxPending = 64;  // pipelined commands awaiting replies (RFC 2449 §6.6)

// What the reply to a forwarded command looks like and what it means to us.
enum class Kind : std::uint8_t {
    Single,     // one line
    MultiLine,  // +OK starts a dot-terminated list (LIST, UIDL, RETR, TOP)
    Capa,       // MultiLine, and its STLS, XCLIENT and XFORWARD lines are dropped
    Login,      // PASS, APOP: +OK means authenticated
    Sasl,       // AUTH <mechanism>: "+ " continuations, then +OK/-ERR (RFC 5034 §4)
    Quit,
};

Kind kind_of(std::string_view verb, std::string_view args) {
    const bool has_args = !text::split_word(args).first.empty();
    if (iequals(verb, "PASS") || iequals(verb, "APOP")) {
        return Kind::Login;
    }
    if (iequals(verb, "AUTH")) {
        return Kind::Sasl;  // with a mechanism: a bare AUTH is answered by postern
    }
    if (iequals(verb, "CAPA")) {
        return Kind::Capa;
    }
    if (iequals(verb, "RETR") || iequals(verb, "TOP")) {
        return Kind::MultiLine;
    }
    if (iequals(verb, "LIST") || iequals(verb, "UIDL")) {
        return has_args ? Kind::Single : Kind::MultiLine;
    }
    return iequals(verb, "QUIT") ? Kind::Quit : Kind::Single;
}

// The commands that carry credentials (RFC 1939 §7, RFC 5034).
bool is_credentials(std::string_view verb) noexcept {
    return iequals(verb, "USER") || iequals(verb, "PASS") || iequals(verb, "APOP") ||
           iequals(verb, "AUTH");
}

class Pop3Machine final : public RelayMachine {
public:
    using RelayMachine::RelayMachine;

private:
    [[nodiscard]] bool client_waits() const noexcept override {
        return pending_.size() >= kMaxPending;
    }
    [[nodiscard]] bool command_under_way() const noexcept override {
        return !pending_.empty() || in_multiline_;
    }
    LineStep client_line(std::string_view line, Actions& out) override;
    void backend_line(std::string_view line, Actions& out) override;
    [[nodiscard]] std::string pre_tls_greeting() const override {
        return replies::pop3_greeting(settings_.hostname);
    }
    PreTlsStep pre_tls_line(std::string_view line, Actions& out) override;
    [[nodiscard]] std::string_view dialogue_state_name() const noexcept override { return "auth"; }

    [[nodiscard]] std::string auth_mechanisms() const;
    void backend_greeting(std::string_view line, Actions& out);
    void forwarding_reply(std::string_view line, Actions& out);
    void backend_reply(std::string_view line, Actions& out);

    PendingQueue<Kind> pending_;
    // The SASL mechanisms of the backend's last CAPA reply (RFC 2449 §6.3), as postern relayed
    // it; unknown until one was.
    std::optional<std::string> sasl_;
    bool in_multiline_ = false;  // relaying the body of the reply to pending_.front()
};

// The AUTHORIZATION state as a STARTTLS listener offers it (RFC 1939 §4, RFC 2595 §4): CAPA,
// STLS and QUIT answered here; USER, PASS, APOP and AUTH refused with [AUTH] (RFC 3206 §4, as
// Dovecot does) whatever require_tls says; anything else -ERR, or with require_tls off, to the
// backend in plaintext.
Pop3Machine::PreTlsStep Pop3Machine::pre_tls_line(std::string_view line, Actions& out) {
    const auto [verb, args] = text::split_word(text::strip_eol(line));
    const bool no_args = text::split_word(args).first.empty();
    const bool local = iequals(verb, "CAPA") || iequals(verb, "STLS") || iequals(verb, "QUIT");
    if (verb.empty()) {
        send_to_client(out, replies::kPop3Unknown);
        return PreTlsStep::Refused;
    }
    if (capabilities::is_identity_command(verb)) {  // never to the backend, even in plaintext
        send_to_client(out, replies::kPop3NotPermitted);
        return PreTlsStep::Refused;
    }
    if (is_credentials(verb)) {
        send_to_client(out, replies::kPop3PrivacyRequired);
        return PreTlsStep::Refused;
    }
    if (!local) {
        if (!settings_.require_tls) {
            return PreTlsStep::NeedBackend;
        }
        send_to_client(out, replies::kPop3Unknown);
        return PreTlsStep::Refused;
    }
    if (!no_args) {
        send_to_client(out, replies::kPop3Arguments);
        return PreTlsStep::Refused;
    }
    if (iequals(verb, "STLS")) {
        send_to_client(out, replies::kPop3StartTls);
        return PreTlsStep::StartTls;
    }
    if (iequals(verb, "QUIT")) {
        close_with(out, replies::kPop3Quit, CloseReason::ClientQuit);
        return PreTlsStep::Closed;
    }
    send_to_client(out, replies::kPop3PreTlsCapa);
    return PreTlsStep::Answered;
}

Pop3Machine::LineStep Pop3Machine::client_line(std::string_view line, Actions& out) {
    const auto [verb, args] = text::split_word(text::strip_eol(line));
    // Never forwarded: the backend would start a TLS handshake inside ours, or take the
    // client's word for its identity (it trusts postern's address, not the client's).
    // Nor credentials from a client in plaintext (require_tls = false, and the client went on
    // without TLS): the backend would take them, as it sees every client come from postern.
    const bool stls = iequals(verb, "STLS");
    const bool credentials_in_clear = !client_on_tls() && is_credentials(verb);
    if (stls || credentials_in_clear || capabilities::is_identity_command(verb)) {
        if (!pending_.empty()) {
            return LineStep::Stall;  // our reply must come after the replies still owed
        }
        send_to_client(out, credentials_in_clear ? replies::kPop3PrivacyRequired
                            : !stls              ? replies::kPop3NotPermitted
                            : client_on_tls()    ? replies::kPop3TlsActive
                                                 : replies::kPop3TlsUnavailable);
        count_error(out);
        return LineStep::Consumed;
    }
    no_error();
    // A bare AUTH is not defined by RFC 5034: Dovecot lists its mechanisms in a multi-line
    // reply, others answer one line. Guessing the framing wrong would shift every later reply
    // (a CAPA's STLS relayed as the body of another), so the backend never sees one.
    if (iequals(verb, "AUTH") && text::split_word(args).first.empty()) {
        if (!pending_.empty()) {
            return LineStep::Stall;  // the CAPA still owed may name the mechanisms
        }
        send_to_client(out, auth_mechanisms());
        return LineStep::Consumed;
    }
    const Kind kind = kind_of(verb, args);
    if (kind == Kind::Sasl) {
        sasl_start();
    }
    pending_.push(kind);
    send_to_backend(out, line);
    return LineStep::Consumed;
}

// Dovecot's answer to a bare AUTH, "+OK", one mechanism a line, ".", from the backend's own
// list; without one, a refusal.
std::string Pop3Machine::auth_mechanisms() const {
    if (!sasl_) {
        return std::string(replies::kPop3AuthMechanismUnknown);
    }
    std::string reply = "+OK\r\n";
    for (text::Words w = text::split_word(*sasl_); !w.first.empty(); w = text::split_word(w.rest)) {
        reply.append(w.first).append("\r\n");
    }
    return reply.append(".\r\n");
}

void Pop3Machine::backend_line(std::string_view line, Actions& out) {
    if (phase() == Phase::Greeting) {
        backend_greeting(line, out);
    } else if (phase() == Phase::Forwarding) {
        forwarding_reply(line, out);
    } else {
        backend_reply(line, out);
    }
}

void Pop3Machine::backend_greeting(std::string_view line, Actions& out) {
    const std::string_view content = text::strip_eol(line);
    if (text::istarts_with(content, "+OK")) {
        // Dovecot answers XCLIENT from a host it does not trust with "+OK ... ignoring": its
        // greeting's "[XCLIENT]" is the only sign that the identity will be taken.
        if (forwarding_due() && !capabilities::pop3_greeting_offers_xclient(line)) {
            forwarding_refused(out);
            return;
        }
        if (relay_greeting()) {  // a STARTTLS listener has greeted the client itself
            const auto filtered = capabilities::filter_pop3_greeting(line);
            if (!greet_client(out, filtered ? std::string_view(*filtered) : line)) {
                backend_unreadable(out);
                return;
            }
        }
        if (!start_forwarding(out)) {
            greeting_relayed();
        }
    } else if (text::istarts_with(content, "-ERR")) {
        send_to_client(out, line);
        backend_refused(out);
    } else {
        close_with(out, replies::kPop3BackendUnavailable, CloseReason::ProtocolError);
    }
}

// XCLIENT's reply (forwarding.hpp), never the client's to see.
void Pop3Machine::forwarding_reply(std::string_view line, Actions& out) {
    const std::string_view content = text::strip_eol(line);
    if (text::istarts_with(content, "+OK")) {
        forwarding_accepted(out);
        greeting_relayed();
    } else if (text::istarts_with(content, "-ERR")) {
        forwarding_refused(out);
    } else {
        backend_unreadable(out);
    }
}

void Pop3Machine::backend_reply(std::string_view line, Actions& out) {
    const std::string_view content = text::strip_eol(line);
    if (in_multiline_) {
        if (content == ".") {
            in_multiline_ = false;
            pending_.pop();
        } else if (pending_.front() == Kind::Capa) {
            if (capabilities::is_pop3_withheld(line, !client_on_tls())) {
                return;  // withheld (capabilities.hpp)
            }
            if (const auto [tag, mechanisms] = text::split_word(content); iequals(tag, "SASL")) {
                sasl_ = std::string(mechanisms);
            }
        }
        send_to_client(out, line);
        return;
    }
    send_to_client(out, line);
    if (pending_.empty()) {
        return;  // unsolicited, e.g. "-ERR" before an idle disconnect
    }
    const Kind kind = pending_.front();
    const bool ok = text::istarts_with(content, "+OK");
    if (kind == Kind::Sasl && !ok && !content.empty() && content.front() == '+') {
        sasl_challenge();  // a "+ " challenge (RFC 5034 §4)
        return;
    }
    if (ok && (kind == Kind::MultiLine || kind == Kind::Capa)) {
        in_multiline_ = true;
        if (kind == Kind::Capa) {
            sasl_.reset();  // this list replaces the last one
        }
        return;
    }
    pending_.pop();
    if (kind == Kind::Sasl) {
        sasl_end();
    }
    if (!ok) {
        return;
    }
    if (kind == Kind::Login || kind == Kind::Sasl) {
        // TRANSACTION state: STLS is no longer valid (RFC 2595 §4), nothing needs us.
        passthrough(out);
    } else if (kind == Kind::Quit) {
        close(out, CloseReason::ClientQuit);
    }
}

}  // namespace

std::unique_ptr<Machine> make_pop3_machine(const MachineSettings& settings) {
    return std::make_unique<Pop3Machine>(settings);
}

}  // namespace postern::protocols
