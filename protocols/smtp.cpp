#include "protocols/smtp.hpp"

#include "protocols/capabilities.hpp"
#include "protocols/pending.hpp"
#include "protocols/relay_machine.hpp"
#include "protocols/replies.hpp"
#include "protocols/smtp_content.hpp"
#include "protocols/smtp_reply.hpp"
#include "protocols/text.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

namespace postern::protocols {

namespace {

using text::iequals;

constexpr std::size_t kMaxPending = 256;  // pipelined commands awaiting replies (RFC 2920)

// Which command a reply still to come answers.
enum class Kind : std::uint8_t {
    Ehlo,   // filter STARTTLS, XCLIENT and XFORWARD out of the reply
    Data,   // 354 opens the message content
    Auth,   // 334 challenges, then 235 or an error (RFC 4954 §4)
    Quit,   // 221, then the backend closes
    Other,  // including BDAT and end-of-data replies
};

enum class ClientMode : std::uint8_t {
    Command,
    AwaitDataReply,  // DATA sent: is the next byte content (354) or a command (anything else)?
    Data,            // content until CRLF.CRLF (RFC 5321 §4.1.1.4)
    Chunk,           // BDAT content: exactly chunk_left_ bytes (RFC 3030 §2)
};

// RFC 3207 §4 lets a server that requires TLS answer 530 to all but NOOP, EHLO, STARTTLS and
// QUIT. Postern answers what it can itself (HELO, RSET and HELP too), gives 530 to what starts
// or feeds a mail transaction or authenticates (this list), and 502 to the rest.
bool needs_tls(std::string_view verb) noexcept {
    for (const std::string_view v :
         {"AUTH", "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "EXPN", "ETRN"}) {
        if (iequals(verb, v)) {
            return true;
        }
    }
    return false;
}

class SmtpMachine final : public RelayMachine {
public:
    using RelayMachine::RelayMachine;

private:
    std::size_t client_content(std::string_view data, Actions& out) override;
    // Waiting for the DATA reply (is the next byte content or a command?), or for room in the
    // queue.
    [[nodiscard]] bool client_waits() const noexcept override {
        return client_mode_ == ClientMode::AwaitDataReply || pending_.size() >= kMaxPending;
    }
    LineStep client_line(std::string_view line, Actions& out) override;
    void backend_line(std::string_view line, Actions& out) override;
    void backend_unreadable(Actions& out) override;
    [[nodiscard]] std::string pre_tls_greeting() const override {
        return replies::smtp_greeting(settings_.hostname);
    }
    PreTlsStep pre_tls_line(std::string_view line, Actions& out) override;
    [[nodiscard]] std::string_view dialogue_state_name() const noexcept override;

    // The domain our EHLO/HELO reply must start with (RFC 5321 §4.1.1.1).
    [[nodiscard]] std::string_view our_name() const noexcept {
        return settings_.hostname.empty() ? std::string_view("localhost") : settings_.hostname;
    }
    [[nodiscard]] std::string pre_tls_ehlo_reply() const;
    void greeting_line(std::string_view line, const SmtpLine& reply, Actions& out);
    void greeting_done(Actions& out);
    void forwarding_reply(const SmtpLine& reply, Actions& out);
    void reply_line(std::string_view line, const SmtpLine& reply, Actions& out);
    void ehlo_line(std::string_view line, const SmtpLine& reply, Actions& out);
    void reply_done(Kind kind, int code, Actions& out);

    PendingQueue<Kind> pending_;
    std::string held_;  // EHLO reply: the newest line, until we know whether it is the last
    // require_tls = false, before the plaintext backend is reached: the client's last EHLO or
    // HELO line, exactly as sent, to be replayed once the backend has greeted us. Cleared at
    // STARTTLS: after TLS the client says EHLO again (RFC 3207 §4.2).
    std::string replay_;
    smtp_content::DataContent content_;  // ClientMode::Data
    std::uint64_t chunk_left_ = 0;
    std::uint32_t reply_lines_ = 0;  // lines of the current backend reply seen so far
    ClientMode client_mode_ = ClientMode::Command;
    bool replaying_ = false;  // the replayed EHLO/HELO is out; its reply is read and dropped
};

std::string SmtpMachine::pre_tls_ehlo_reply() const {
    std::string reply = "250-";
    reply.append(our_name()).append("\r\n");
    if (settings_.smtp_extensions) {
        for (const std::string& extension : *settings_.smtp_extensions) {
            if (capabilities::smtp_advertisable(extension)) {
                reply.append("250-").append(extension).append("\r\n");
            }
        }
    }
    reply.append("250 STARTTLS\r\n");
    return reply;
}

// Before TLS postern answers alone, in command order, so pipelined commands (RFC 2920) need
// no queue: each reply is written as its line is read.
SmtpMachine::PreTlsStep SmtpMachine::pre_tls_line(std::string_view line, Actions& out) {
    const auto [verb, args] = text::split_word(text::strip_eol(line));
    const bool no_args = text::split_word(args).first.empty();
    const bool ehlo = iequals(verb, "EHLO");
    if (ehlo || iequals(verb, "HELO")) {
        if (no_args) {
            send_to_client(out, ehlo ? replies::kSmtpEhloSyntax : replies::kSmtpHeloSyntax);
            return PreTlsStep::Refused;
        }
        replay_.assign(line);
        if (ehlo) {
            send_to_client(out, pre_tls_ehlo_reply());
        } else {
            send_to_client(out, "250 " + std::string(our_name()) + "\r\n");
        }
        return PreTlsStep::Answered;
    }
    if (iequals(verb, "STARTTLS")) {
        if (!no_args) {  // RFC 3207 §4: "501 Syntax error (no parameters allowed)"
            send_to_client(out, replies::kSmtpStartTlsSyntax);
            return PreTlsStep::Refused;
        }
        replay_.clear();
        send_to_client(out, replies::kSmtpStartTls);
        return PreTlsStep::StartTls;
    }
    if (iequals(verb, "NOOP") || iequals(verb, "RSET")) {  // RSET keeps the EHLO (§4.1.1.5)
        send_to_client(out, replies::kSmtpOk);
        return PreTlsStep::Answered;
    }
    if (iequals(verb, "HELP")) {
        send_to_client(out, replies::kSmtpHelp);
        return PreTlsStep::Answered;
    }
    if (iequals(verb, "QUIT")) {
        close_with(out, replies::kSmtpQuit, CloseReason::ClientQuit);
        return PreTlsStep::Closed;
    }
    if (verb.empty()) {
        send_to_client(out, replies::kSmtpBadSyntax);
        return PreTlsStep::Refused;
    }
    if (capabilities::is_identity_command(verb)) {  // never to the backend, even in plaintext
        send_to_client(out, replies::kSmtpNotPermitted);
        return PreTlsStep::Refused;
    }
    // A plaintext MX: the backend decides from here, but never on credentials, which only
    // postern can keep off the wire (the backend sees every client come from postern).
    if (!settings_.require_tls && !iequals(verb, "AUTH")) {
        return PreTlsStep::NeedBackend;
    }
    send_to_client(out, needs_tls(verb) ? replies::kSmtpMustStartTls : replies::kSmtpUnknown);
    return PreTlsStep::Refused;
}

std::string_view SmtpMachine::dialogue_state_name() const noexcept {
    switch (client_mode_) {
        case ClientMode::Data:
        case ClientMode::Chunk:
            return "data";
        case ClientMode::Command:
        case ClientMode::AwaitDataReply:
            break;
    }
    return sasl_active() ? "auth" : "command";
}

// Message content: DATA up to and including CRLF.CRLF, in the form every backend frames as
// postern does (smtp_content.hpp), or what is left of a BDAT chunk, byte for byte.
std::size_t SmtpMachine::client_content(std::string_view data, Actions& out) {
    if (client_mode_ == ClientMode::Command || client_mode_ == ClientMode::AwaitDataReply) {
        return 0;
    }
    if (client_mode_ == ClientMode::Data) {
        std::size_t n = 0;
        while (n < data.size() && !content_.done()) {
            const smtp_content::Step step = content_.next(data.substr(n));
            send_to_backend(out, data.substr(n, step.forward));
            send_to_backend(out, step.append);
            n += step.consumed;
        }
        if (content_.done()) {
            client_mode_ = ClientMode::Command;
            pending_.push(Kind::Other);  // the reply to the whole message
        }
        return n;
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, data.size()));
    chunk_left_ -= n;
    if (chunk_left_ == 0) {
        client_mode_ = ClientMode::Command;
    }
    send_to_backend(out, data.substr(0, n));
    return n;
}

SmtpMachine::LineStep SmtpMachine::client_line(std::string_view line, Actions& out) {
    const auto [verb, args] = text::split_word(text::strip_eol(line));
    // Never forwarded: the backend would start a TLS handshake inside ours, or take the
    // client's word for its identity (it trusts postern's address, not the client's).
    // Nor AUTH from a client in plaintext (a port-25 session that went on without TLS): its
    // credentials would cross the network in clear.
    const bool starttls = iequals(verb, "STARTTLS");
    const bool auth_in_clear = !client_on_tls() && iequals(verb, "AUTH");
    if (starttls || auth_in_clear || capabilities::is_identity_command(verb)) {
        if (!pending_.empty()) {
            return LineStep::Stall;  // replies stay in command order (RFC 2920 §3)
        }
        send_to_client(out, auth_in_clear     ? replies::kSmtpMustStartTls
                            : !starttls       ? replies::kSmtpNotPermitted
                            : client_on_tls() ? replies::kSmtpTlsActive
                                              : replies::kSmtpTlsUnavailable);
        count_error(out);
        return LineStep::Consumed;
    }
    no_error();
    Kind kind = Kind::Other;
    if (iequals(verb, "BDAT")) {
        // Exactly "BDAT <size> [LAST]": anything the backend might read differently would
        // let the two of us disagree on where content ends.
        const auto [size_word, after_size] = text::split_word(args);
        const auto [last_word, after_last] = text::split_word(after_size);
        const auto size = text::parse_count(size_word, text::kMaxCount);
        if (!size || !(last_word.empty() || iequals(last_word, "LAST")) ||
            !text::split_word(after_last).first.empty()) {
            close_with(out, replies::kSmtpBadChunkSize, CloseReason::ProtocolError);
            return LineStep::Consumed;
        }
        chunk_left_ = *size;
        if (chunk_left_ > 0) {
            client_mode_ = ClientMode::Chunk;
        }
    } else if (iequals(verb, "EHLO")) {
        kind = Kind::Ehlo;
    } else if (iequals(verb, "DATA")) {
        kind = Kind::Data;
        client_mode_ = ClientMode::AwaitDataReply;
    } else if (iequals(verb, "AUTH")) {
        kind = Kind::Auth;
        sasl_start();
    } else if (iequals(verb, "QUIT")) {
        kind = Kind::Quit;
    }
    pending_.push(kind);
    send_to_backend(out, line);
    return LineStep::Consumed;
}

void SmtpMachine::backend_line(std::string_view line, Actions& out) {
    const std::optional<SmtpLine> reply = parse_smtp_line(text::strip_eol(line));
    if (!reply) {
        backend_unreadable(out);
    } else if (phase() == Phase::Greeting) {
        greeting_line(line, *reply, out);
    } else if (phase() == Phase::Forwarding) {
        forwarding_reply(*reply, out);
    } else {
        reply_line(line, *reply, out);
    }
}

// A greeting postern cannot read still owes the client the protocol's goodbye.
void SmtpMachine::backend_unreadable(Actions& out) {
    if (phase() == Phase::Greeting || phase() == Phase::Forwarding) {
        close_with(out, backend_unavailable_reply(), CloseReason::ProtocolError);
    } else {
        close(out, CloseReason::ProtocolError);
    }
}

// The greeting, and on the plaintext path of a STARTTLS listener the reply to the replayed
// EHLO/HELO. A refusal (RFC 5321 §3.1: 554 or 421 instead of 220) is relayed whole and closes;
// a 220 is relayed only on implicit TLS, since a STARTTLS listener has greeted the client, and
// only once the client's identity is forwarded, when it is to be.
void SmtpMachine::greeting_line(std::string_view line, const SmtpLine& reply, Actions& out) {
    const bool ok = reply.code / 100 == 2;
    if (!ok) {
        send_to_client(out, line);
    } else if (relay_greeting() && !replaying_ && !greet_client(out, line)) {
        backend_unreadable(out);
        return;
    }
    if (!reply.last) {
        return;
    }
    if (!ok) {
        backend_refused(out);
    } else if (replaying_ || !start_forwarding(out)) {
        greeting_done(out);
    }
}

// After the greeting (and XCLIENT): what the client was told pre-TLS is the backend's own EHLO
// reply; the backend must hear the same EHLO before the client's first command, alone (RFC 2920
// §3.1).
void SmtpMachine::greeting_done(Actions& out) {
    if (!replaying_ && !replay_.empty()) {
        send_to_backend(out, replay_);
        replay_.clear();
        replaying_ = true;
    } else {
        replaying_ = false;
        greeting_relayed();
    }
}

// XCLIENT's reply: a new greeting (220), never the client's to see; anything else refuses it
// (XCLIENT_README: 421, 501, 503, 550, or a connection-level access decision).
void SmtpMachine::forwarding_reply(const SmtpLine& reply, Actions& out) {
    if (!reply.last) {
        return;
    }
    if (reply.code / 100 == 2) {
        forwarding_accepted(out);
        greeting_done(out);
    } else {
        forwarding_refused(out);
    }
}

void SmtpMachine::reply_line(std::string_view line, const SmtpLine& reply, Actions& out) {
    if (pending_.empty()) {  // unsolicited, e.g. a 421 before an idle disconnect
        send_to_client(out, line);
        return;
    }
    const Kind kind = pending_.front();
    if (kind == Kind::Ehlo) {
        ehlo_line(line, reply, out);
    } else {
        send_to_client(out, line);
    }
    if (!reply.last) {
        ++reply_lines_;
        return;
    }
    reply_lines_ = 0;
    reply_done(kind, reply.code, out);
}

void SmtpMachine::ehlo_line(std::string_view line, const SmtpLine& reply, Actions& out) {
    // The first line names the server, never an extension (RFC 5321 §4.1.1.1).
    if (reply_lines_ > 0 && reply.code == 250 &&
        capabilities::is_smtp_withheld(line, !client_on_tls())) {
        if (reply.last) {  // "250-SMTPUTF8" + "250 STARTTLS" -> "250 SMTPUTF8"
            held_[3] = ' ';
            send_to_client(out, held_);
            held_.clear();
        }
        return;
    }
    send_to_client(out, held_);
    held_.clear();
    if (reply.last) {
        send_to_client(out, line);
    } else {
        held_.assign(line);
    }
}

void SmtpMachine::reply_done(Kind kind, int code, Actions& out) {
    if (kind == Kind::Auth && code == 334) {
        sasl_challenge();
        return;  // still the AUTH exchange
    }
    pending_.pop();
    switch (kind) {
        case Kind::Data:
            if (code == 354) {
                client_mode_ = ClientMode::Data;
                content_ = {};
            } else {
                client_mode_ = ClientMode::Command;
            }
            return;
        case Kind::Auth:
            // No Passthrough after 235: SMTP allows EHLO at any time, and every later EHLO
            // reply must still lose STARTTLS (and a later STARTTLS get 503), so the command and
            // DATA/BDAT tracking stays for the whole session (style.md §3.1).
            sasl_end();
            return;
        case Kind::Quit:
            if (code == 221) {
                close(out, CloseReason::ClientQuit);
            }
            return;
        case Kind::Ehlo:
        case Kind::Other:
            return;
    }
}

}  // namespace

std::unique_ptr<Machine> make_smtp_machine(const MachineSettings& settings) {
    return std::make_unique<SmtpMachine>(settings);
}

}  // namespace postern::protocols
