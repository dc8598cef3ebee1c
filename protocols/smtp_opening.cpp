// The opening of an SMTP session (smtp_machine.hpp): postern's own plaintext dialogue on
// STARTTLS listeners, the backend's greeting, the forwarding exchange that may follow it, and the
// reply to the client's EHLO/HELO replayed on a plaintext MX; everything up to Phase::Dialogue.

#include "protocols/capabilities.hpp"
#include "protocols/smtp_machine.hpp"
#include "protocols/text.hpp"

#include <string>

namespace postern::protocols::smtp_detail {

namespace {

using text::iequals;

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

}  // namespace

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
    if (replaying_) {  // the reply to the client's own EHLO/HELO, read here, not relayed
        note_ehlo_line(reply);
        reply_lines_ = reply.last ? 0 : reply_lines_ + 1;
    }
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

}  // namespace postern::protocols::smtp_detail
