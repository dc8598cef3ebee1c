#include "protocols/relay_machine.hpp"

#include "protocols/text.hpp"

#include <utility>
#include <variant>

namespace postern::protocols {

namespace {

// Appends to the previous action when it is of the same kind: the session writes fewer,
// larger chunks, and order is kept because only the last action is ever extended.
template <class Send>
void append_send(Actions& out, std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    if (!out.empty()) {
        if (auto* last = std::get_if<Send>(&out.back())) {
            last->bytes.append(bytes);
            return;
        }
    }
    out.emplace_back(Send{std::string(bytes)});
}

enum class Input : std::uint8_t { Ok, NulByte, Junk };

constexpr bool is_control(unsigned char c) noexcept {
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

// A plaintext command line without its terminator, scanned in order so that the first bad
// byte decides: NUL anywhere (a C-string parser would end the command there); any other
// control byte (a bare CR, an ESC, the 0x16 that opens a TLS ClientHello); a byte above 0x7F
// in the first word (a verb or tag is ASCII; arguments may be UTF-8, RFC 6531/9051).
// `command_words`: how many leading words name the command and must be ASCII (IMAP: the tag and
// the verb; SMTP and POP3: the verb). Arguments may carry UTF-8 (RFC 6531, RFC 9051).
Input check_line(std::string_view content, int command_words) noexcept {
    int word = 0;
    bool in_word = false;
    for (const char ch : content) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == 0) {
            return Input::NulByte;
        }
        if (is_control(c)) {
            return Input::Junk;
        }
        if (c == ' ' || c == '\t') {
            in_word = false;
            continue;
        }
        if (!in_word) {
            in_word = true;
            ++word;
        }
        if (c > 0x7F && word <= command_words) {
            return Input::Junk;
        }
    }
    return Input::Ok;
}

// The first byte of a line not complete yet, judged as check_line() would judge it in the
// whole line, so a TLS ClientHello sent to a STARTTLS port is refused at once instead of
// waiting for a line feed that may never come. CR and LF may start a terminator.
Input check_first_byte(char ch) noexcept {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) {
        return Input::NulByte;
    }
    if (c == '\r' || c == '\n') {
        return Input::Ok;
    }
    return is_control(c) || c > 0x7F ? Input::Junk : Input::Ok;
}

}  // namespace

std::size_t RelayMachine::on_bytes(Peer from, std::string_view data, Actions& out) {
    switch (from) {
        case Peer::Client:
            switch (phase_) {
                case Phase::Dialogue:
                    return dialogue_client(data, out);
                case Phase::PreTls:
                    return pre_tls_client(data, out);
                case Phase::TlsPending:
                    // Sent after STARTTLS and before the handshake: the session drops such bytes
                    // itself; should any be offered, they are swallowed, never acted on
                    // (CVE-2011-0411 class).
                    return data.size();
                default:
                    client_stalled_ = client_stalled_ || (relaying() && !data.empty());
                    return 0;
            }
        case Peer::Backend:
            return relaying() ? relay_backend(data, out) : 0;
    }
    return 0;
}

// One line per call: postern answers each itself, and the host offers the next only once the
// client has read enough of the answers (a client pipelining CAPA must not grow them unbounded).
std::size_t RelayMachine::pre_tls_client(std::string_view data, Actions& out) {
    if (phase_ != Phase::PreTls || data.empty()) {
        return 0;
    }
    Input input = check_first_byte(data.front());
    std::string_view line;
    if (input == Input::Ok) {
        const auto read = pre_tls_reader_.next(data, settings_.max_line);
        if (read.status == LineReader::Status::NeedMore) {
            return 0;
        }
        if (read.status == LineReader::Status::TooLong) {
            close_with(out, replies_.line_too_long, CloseReason::LineTooLong);
            return 0;
        }
        line = read.line;
        input = check_line(text::strip_eol(line), settings_.protocol == Protocol::Imap ? 2 : 1);
    }
    if (input != Input::Ok) {
        close_with(out, input == Input::NulByte ? replies_.nul_byte : replies_.junk,
                   CloseReason::ProtocolError);
        return 0;
    }
    switch (pre_tls_line(line, out)) {
        case PreTlsStep::NeedBackend:
            // require_tls is off and the client wants more than postern can answer: the line
            // stays unconsumed and is read again as the first command of the relay.
            phase_ = Phase::Connecting;
            out.emplace_back(ConnectBackend{});
            return 0;
        case PreTlsStep::Answered:
            no_error();
            break;
        case PreTlsStep::Refused:
            count_error(out);
            break;
        case PreTlsStep::StartTls:
            // Stop right after the STARTTLS line: what follows it is for the session to drop.
            phase_ = Phase::TlsPending;
            out.emplace_back(StartTls{});
            pre_tls_reader_ = LineReader{};
            errors_ = 0;
            break;
        case PreTlsStep::Closed:
            break;
    }
    return line.size();
}

std::size_t RelayMachine::dialogue_client(std::string_view data, Actions& out) {
    std::size_t pos = 0;
    while (phase_ == Phase::Dialogue && pos < data.size()) {
        const std::string_view rest = data.substr(pos);
        if (const std::size_t content = client_content(rest, out); content > 0) {
            pos += content;
            continue;
        }
        // The client's bytes keep until the backend has answered: a SASL client owes nothing
        // before the next challenge, and the subclass may need a reply first (see machine.hpp).
        if ((sasl_active_ && sasl_credits_ == 0) || client_waits()) {
            client_stalled_ = true;
            break;
        }
        const auto read = client_reader_.next(rest, settings_.max_line);
        if (read.status == LineReader::Status::NeedMore) {
            break;
        }
        if (read.status == LineReader::Status::TooLong) {
            close_with(out, replies_.line_too_long, CloseReason::LineTooLong);
            break;
        }
        const std::string_view line = read.line;
        // A NUL could end the command early in a C-string backend parser: "STARTTLS\0x"
        // would reach it as STARTTLS although we saw something else.
        if (text::has_nul(line)) {
            close_with(out, replies_.nul_byte, CloseReason::ProtocolError);
        } else if (sasl_active_) {  // a response (base64 or "*"), not a command
            --sasl_credits_;
            send_to_backend(out, line);
        } else if (client_line(line, out) == LineStep::Stall) {
            client_reader_.unread(line.size());
            client_stalled_ = true;
            break;
        }
        pos += line.size();
    }
    return pos;
}

std::size_t RelayMachine::relay_backend(std::string_view data, Actions& out) {
    std::size_t pos = 0;
    while (relaying() && pos < data.size()) {
        const std::string_view rest = data.substr(pos);
        if (const std::size_t content = backend_content(rest, out); content > 0) {
            pos += content;
            continue;
        }
        const auto read = backend_reader_.next(rest, settings_.max_backend_line);
        if (read.status == LineReader::Status::NeedMore) {
            break;
        }
        if (read.status == LineReader::Status::TooLong) {
            backend_unreadable(out);
            break;
        }
        pos += read.line.size();
        backend_line(read.line, out);
        if (std::exchange(client_stalled_, false)) {
            break;  // the client's held bytes first
        }
    }
    return pos;
}

void RelayMachine::forward_identity(ClientIdentity identity) {
    switch (phase_) {
        case Phase::Accepted:
        case Phase::PreTls:
        case Phase::TlsPending:
        case Phase::AwaitTls:
        case Phase::Connecting:
            identity_ = std::move(identity);
            return;
        default:  // the greeting may be read already: too late to go first
            return;
    }
}

bool RelayMachine::greet_client(Actions& out, std::string_view bytes) {
    if (!forwarding_due()) {
        send_to_client(out, bytes);
        return true;
    }
    if (held_greeting_.size() + bytes.size() > settings_.max_backend_line) {
        return false;
    }
    held_greeting_.append(bytes);
    return true;
}

bool RelayMachine::start_forwarding(Actions& out) {
    if (!identity_) {
        return false;
    }
    send_to_backend(out, forwarding::command(settings_.protocol, *identity_));
    identity_.reset();
    phase_ = Phase::Forwarding;
    return true;
}

void RelayMachine::forwarding_accepted(Actions& out) {
    phase_ = Phase::Greeting;
    send_to_client(out, held_greeting_);
    held_greeting_ = std::string();
}

void RelayMachine::on_event(Event event, Actions& out) {
    switch (event) {
        case Event::ClientConnected:
            if (phase_ == Phase::Accepted) {
                phase_ = Phase::PreTls;
                send_to_client(out, pre_tls_greeting());
            }
            return;
        case Event::TlsReady:
            if (phase_ == Phase::AwaitTls || phase_ == Phase::TlsPending) {
                client_tls_ = true;
                phase_ = Phase::Connecting;
                out.emplace_back(ConnectBackend{});
            }
            return;
        case Event::BackendReady:
            if (phase_ == Phase::Connecting) {
                phase_ = Phase::Greeting;
            }
            return;
        case Event::BackendFailed:
            // Also after the greeting: the client still deserves the protocol's goodbye.
            if (phase_ == Phase::Connecting || relaying()) {
                close_with(out, backend_unavailable_reply(), CloseReason::BackendUnreachable);
            }
            return;
    }
}

std::string_view RelayMachine::state_name() const noexcept {
    switch (phase_) {
        case Phase::Accepted:
            return "accepted";
        case Phase::PreTls:
            return "pre_tls";
        case Phase::TlsPending:
            return "tls_pending";
        case Phase::AwaitTls:
            return "await_tls";
        case Phase::Connecting:
            return "connecting";
        case Phase::Greeting:
            return "greeting";
        case Phase::Forwarding:
            return "forwarding";
        case Phase::Dialogue:
            return dialogue_state_name();
        case Phase::Passthrough:
            return "passthrough";
        case Phase::Closed:
            return "closed";
    }
    return "unknown";
}

void RelayMachine::count_error(Actions& out) {
    if (++errors_ >= settings_.max_errors && phase_ != Phase::Closed) {
        close_with(out, replies_.too_many_errors, CloseReason::TooManyErrors);
    }
}

void RelayMachine::close(Actions& out, CloseReason reason) {
    phase_ = Phase::Closed;
    out.emplace_back(Close{reason});
}

void RelayMachine::close_with(Actions& out, std::string_view reply, CloseReason reason) {
    send_to_client(out, reply);
    close(out, reason);
}

void RelayMachine::close_with(Actions& out, const replies::Canned& reply, CloseReason reason) {
    close_with(out, reply.text(settings_.hostname), reason);
}

void RelayMachine::passthrough(Actions& out) {
    phase_ = Phase::Passthrough;
    out.emplace_back(Passthrough{});
}

void RelayMachine::send_to_client(Actions& out, std::string_view bytes) {
    append_send<SendToClient>(out, bytes);
}

void RelayMachine::send_to_backend(Actions& out, std::string_view bytes) {
    append_send<SendToBackend>(out, bytes);
}

}  // namespace postern::protocols
