#include "protocols/smtp.hpp"

#include "protocols/capabilities.hpp"
#include "protocols/smtp_machine.hpp"
#include "protocols/text.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

namespace postern::protocols {

namespace smtp_detail {

using text::iequals;

std::string_view SmtpMachine::dialogue_state_name() const noexcept {
    switch (client_mode_) {
        case ClientMode::Data:
        case ClientMode::Chunk:
        case ClientMode::Discard:
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
    if (client_mode_ == ClientMode::Chunk) {
        send_to_backend(out, data.substr(0, n));
    }
    if (chunk_left_ == 0) {
        client_mode_ = ClientMode::Command;
    }
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
    if (iequals(verb, "BDAT")) {
        return bdat_line(line, args, out);
    }
    no_error();
    Kind kind = Kind::Other;
    if (iequals(verb, "EHLO")) {
        kind = Kind::Ehlo;
        ++ehlo_in_flight_;
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

// RFC 3030 §2. Exactly "BDAT <size> [LAST]": anything the backend might read differently would
// let the two of us disagree on where content ends. Sent only to a backend whose EHLO reply
// offered CHUNKING: one that did not would read the chunk as commands, unseen by postern.
SmtpMachine::LineStep SmtpMachine::bdat_line(std::string_view line, std::string_view args,
                                             Actions& out) {
    const auto [size_word, after_size] = text::split_word(args);
    const auto [last_word, after_last] = text::split_word(after_size);
    const auto size = text::parse_count(size_word, text::kMaxCount);
    if (!size || !(last_word.empty() || iequals(last_word, "LAST")) ||
        !text::split_word(after_last).first.empty()) {
        close_with(out, replies::kSmtpBadChunkSize, CloseReason::ProtocolError);
        return LineStep::Consumed;
    }
    if (ehlo_in_flight_ > 0 || (!chunking_ && !pending_.empty())) {
        return LineStep::Stall;  // the EHLO reply says whether; our reply comes in its turn
    }
    chunk_left_ = *size;
    if (!chunking_) {
        // The chunk is read and dropped, so neither the backend (which never hears of it) nor
        // postern takes its bytes for commands.
        send_to_client(out, replies::kSmtpNotImplemented);
        client_mode_ = chunk_left_ > 0 ? ClientMode::Discard : ClientMode::Command;
        count_error(out);
        return LineStep::Consumed;
    }
    no_error();
    if (chunk_left_ > 0) {
        client_mode_ = ClientMode::Chunk;
    }
    pending_.push(Kind::Other);
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

void SmtpMachine::reply_line(std::string_view line, const SmtpLine& reply, Actions& out) {
    if (pending_.empty()) {  // unsolicited, e.g. a 421 before an idle disconnect
        send_to_client(out, line);
        return;
    }
    const Kind kind = pending_.front();
    if (kind == Kind::Ehlo) {
        note_ehlo_line(reply);
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
            --ehlo_in_flight_;
            return;
        case Kind::Other:
            return;
    }
}

// Every EHLO reply replaces what the last one offered (RFC 5321 §4.1.4); its first line names
// the server.
void SmtpMachine::note_ehlo_line(const SmtpLine& reply) noexcept {
    if (reply_lines_ == 0) {
        chunking_ = false;
    } else if (reply.code == 250 && iequals(text::split_word(reply.text).first, "CHUNKING")) {
        chunking_ = true;
    }
}

}  // namespace smtp_detail

std::unique_ptr<Machine> make_smtp_machine(const MachineSettings& settings) {
    return std::make_unique<smtp_detail::SmtpMachine>(settings);
}

}  // namespace postern::protocols
