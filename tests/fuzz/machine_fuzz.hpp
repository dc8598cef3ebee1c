#pragma once
// Shared libFuzzer harness for the protocol machines. The input is a script: a settings byte,
// then operations (an event, or up to 255 bytes from the client or the backend). The script
// is played twice, once in whole chunks and once byte at a time, through the loop that drives
// proxy::Session's machine (protocols/driver.hpp; dialogue.hpp does the same for unit tests),
// dropping the client's unconsumed bytes at StartTls as the session does. Invariants checked,
// besides "no crash, leak, hang or UB": both plays yield the same merged actions; on_bytes() never
// claims more than it was given; nothing follows Passthrough or Close; no empty sends; nothing
// reaches the backend before the client has been sent something (a greeting), except the
// forwarding command when the machine was given the client's identity, which is then the first
// thing the backend gets (forwarding.hpp; a backend that answered it at once, in the same bytes as
// its greeting, may have the next command merged into that send); once pumped to rest,
// a live machine leaves fewer than max_backend_line backend bytes unconsumed (it never waits on the
// client to read them). STARTTLS listeners: at most one StartTls and none on implicit TLS, emitted
// by a client call that consumed exactly through a line's LF, after a reply to the client; with
// require_tls, neither ConnectBackend nor SendToBackend before a TlsReady that followed
// StartTls (no plaintext ever reaches the backend).

#include "protocols/driver.hpp"
#include "protocols/forwarding.hpp"
#include "protocols/machine.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace postern::protocols::fuzz {

inline void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        std::fprintf(stderr, "machine_fuzz.hpp:%d: invariant broken\n", line);
        std::abort();
    }
}

struct Op {
    enum class Kind : std::uint8_t { Event, Client, Backend };
    Kind kind;
    Event event;
    std::string_view bytes;
};

class Player {
public:
    Player(const MachineSettings& settings, const std::optional<ClientIdentity>& identity)
        : settings_(settings), machine_(make_machine(settings)) {
        if (identity) {
            machine_->forward_identity(*identity);
            forwarding_command_ = forwarding::command(settings.protocol, *identity);
        }
    }

    void play(const Op& op, bool bytewise) {
        if (op.kind == Op::Kind::Event) {
            if (!done_) {
                if (op.event == Event::TlsReady && start_tls_) {
                    tls_ready_ = true;
                }
                deliver(*this, op.event, out_);
                pump();
            }
            return;
        }
        const std::size_t step = bytewise ? 1 : (op.bytes.empty() ? 1 : op.bytes.size());
        for (std::size_t i = 0; i < op.bytes.size(); i += step) {
            const std::string_view chunk = op.bytes.substr(i, step);
            if (passthrough_) {
                append(op.kind == Op::Kind::Client ? 'b' : 'c', chunk);
            } else if (!done_) {
                (op.kind == Op::Kind::Client ? client_ : backend_).append(chunk);
                pump();
            }
        }
    }

    [[nodiscard]] std::string finish() const {
        return transcript_ + "|state=" + std::string(machine_->state_name()) +
               "|client=" + client_ + "|backend=" + backend_;
    }

    // The host side of protocols/driver.hpp (the session's loop).
    Machine* machine() { return done_ ? nullptr : machine_.get(); }
    std::string_view unread(Peer from) const { return from == Peer::Client ? client_ : backend_; }
    void act(Actions& /*actions: out_*/) { record(); }

    void consumed(Peer from, std::size_t n, Actions& /*actions: out_*/) {
        std::string& buffer = from == Peer::Client ? client_ : backend_;
        require(n <= buffer.size());
        for (const auto& action : out_) {
            if (std::holds_alternative<StartTls>(action)) {
                require(from == Peer::Client && n > 0 && buffer[n - 1] == '\n');
            }
        }
        buffer.erase(0, n);
        record();
    }

private:
    void pump() {
        protocols::pump(*this, out_);
        const std::string_view state = machine_->state_name();
        if (!done_ && state != "await_tls" && state != "connecting" && state != "accepted" &&
            state != "pre_tls" && state != "tls_pending") {
            require(backend_.size() < settings_.max_backend_line);
        }
    }

    // Consecutive bytes in one direction are merged: how they are cut into actions depends
    // on how they arrived. 'C'/'B': sent by the machine; 'c'/'b': relayed raw after
    // Passthrough by the session.
    void append(char direction, std::string_view bytes) {
        if (bytes.empty()) {
            return;
        }
        if (last_ != direction) {
            transcript_ += '|';
            transcript_ += direction;
            transcript_ += ':';
            last_ = direction;
        }
        transcript_.append(bytes);
    }

    void record() {
        for (const auto& action : out_) {
            require(!done_);
            // The go-ahead reply comes right before StartTls.
            require(!std::holds_alternative<StartTls>(action) || last_action_to_client_);
            last_action_to_client_ = std::holds_alternative<SendToClient>(action);
            if (const auto* c = std::get_if<SendToClient>(&action)) {
                require(!c->bytes.empty());
                sent_to_client_ = true;
                append('C', c->bytes);
                continue;
            }
            if (const auto* b = std::get_if<SendToBackend>(&action)) {
                require(!b->bytes.empty());
                if (!forwarding_command_.empty() && !sent_to_backend_) {
                    require(b->bytes.starts_with(forwarding_command_));
                } else {
                    require(sent_to_client_);
                }
                sent_to_backend_ = true;
                require(backend_allowed());
                append('B', b->bytes);
                continue;
            }
            last_ = 0;
            if (std::holds_alternative<ConnectBackend>(action)) {
                require(backend_allowed());
                transcript_ += "|connect";
            } else if (std::holds_alternative<StartTls>(action)) {
                require(!settings_.implicit_tls && !start_tls_);
                start_tls_ = true;
                transcript_ += "|start_tls";
                client_.clear();  // as the session drops them; the rest of the op follows
            } else if (std::holds_alternative<Passthrough>(action)) {
                transcript_ += "|passthrough";
                append('b', client_);
                append('c', backend_);
                done_ = passthrough_ = true;
                client_.clear();
                backend_.clear();
            } else if (const auto* close = std::get_if<Close>(&action)) {
                transcript_ += "|close:" + std::string(to_string(close->reason));
                done_ = true;
                client_.clear();
                backend_.clear();
            }
        }
        out_.clear();
    }

    [[nodiscard]] bool backend_allowed() const noexcept {
        return settings_.implicit_tls || !settings_.require_tls || tls_ready_;
    }

    MachineSettings settings_;
    std::unique_ptr<Machine> machine_;
    std::string forwarding_command_;  // what the backend must get first; empty: no identity
    Actions out_;
    std::string transcript_;
    std::string client_;
    std::string backend_;
    char last_ = 0;
    bool done_ = false;
    bool passthrough_ = false;
    bool sent_to_client_ = false;
    bool sent_to_backend_ = false;
    bool last_action_to_client_ = false;
    bool start_tls_ = false;  // StartTls was emitted
    bool tls_ready_ = false;  // and TlsReady delivered after it
};

// Byte 0: settings (bit 0: tight line limits; bit 1: STARTTLS listener; bit 2: require_tls
// off; bit 3: max_errors 2; bit 4: the client's identity is forwarded, bit 5 picks an IPv6 one;
// bit 6: SMTP, the backend's EHLO was learned with no extensions, so no CHUNKING nor AUTH).
// Then operations: byte % 3 picks an event (next byte % 4 picks
// which: TlsReady, BackendReady, BackendFailed, ClientConnected), client bytes or backend bytes
// (next byte is the length).
inline int run(Protocol protocol, const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    static const auto extensions = std::make_shared<const std::vector<std::string>>(
        std::vector<std::string>{"PIPELINING", "SIZE 10240000", "STARTTLS", "AUTH PLAIN LOGIN",
                                 "AUTH=LOGIN", "CHUNKING", "X\r\n250 INJECTED", "8BITMIME"});
    static const auto no_extensions = std::make_shared<const std::vector<std::string>>();
    MachineSettings settings;
    settings.protocol = protocol;
    settings.hostname = "mx.test";
    settings.smtp_extensions = (data[0] & 64U) != 0 ? no_extensions : extensions;
    if ((data[0] & 1U) != 0) {
        settings.max_line = 24;
        settings.max_backend_line = 48;
    }
    settings.implicit_tls = (data[0] & 2U) == 0;
    settings.require_tls = settings.implicit_tls || (data[0] & 4U) == 0;
    if ((data[0] & 8U) != 0) {
        settings.max_errors = 2;
    }
    static constexpr Event kEvents[] = {Event::TlsReady, Event::BackendReady, Event::BackendFailed,
                                        Event::ClientConnected};
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<Op> ops;
    std::size_t i = 1;
    while (i + 1 < input.size()) {
        const auto kind = static_cast<std::uint8_t>(input[i]) % 3;
        const auto arg = static_cast<std::uint8_t>(input[i + 1]);
        i += 2;
        if (kind == 0) {
            ops.push_back({Op::Kind::Event, kEvents[arg % std::size(kEvents)], {}});
            continue;
        }
        const std::string_view bytes = input.substr(i, arg);
        i += bytes.size();
        ops.push_back({kind == 1 ? Op::Kind::Client : Op::Kind::Backend, Event::TlsReady, bytes});
    }
    std::optional<ClientIdentity> identity;
    if ((data[0] & 16U) != 0) {
        identity = (data[0] & 32U) != 0 ? ClientIdentity{"2001:db8::7", 40000, "2001:db8::1", 993}
                                        : ClientIdentity{"203.0.113.7", 40000, "192.0.2.1", 465};
    }
    Player whole(settings, identity);
    Player bytewise(settings, identity);
    for (const Op& op : ops) {
        whole.play(op, false);
        bytewise.play(op, true);
    }
    require(whole.finish() == bytewise.finish());
    return 0;
}

}  // namespace postern::protocols::fuzz
