#pragma once
// The SMTP machine's class, shared by its two halves and by nothing else (smtp.hpp is the
// interface): smtp_opening.cpp, everything before the relayed dialogue (postern's own plaintext
// dialogue on STARTTLS listeners, the backend's greeting, the forwarding exchange, the reply to
// a replayed EHLO), and smtp.cpp, the dialogue itself (commands, replies, DATA and BDAT
// content). See smtp.hpp for what the machine guarantees.

#include "protocols/pending.hpp"
#include "protocols/relay_machine.hpp"
#include "protocols/replies.hpp"
#include "protocols/smtp_content.hpp"
#include "protocols/smtp_reply.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postern::protocols::smtp_detail {

inline constexpr std::size_t kMaxPending = 256;  // pipelined commands awaiting replies (RFC 2920)

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
    Discard,         // a refused BDAT's chunk: chunk_left_ bytes dropped
};

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
    [[nodiscard]] bool command_under_way() const noexcept override {
        return !pending_.empty() || client_mode_ != ClientMode::Command || replaying_;
    }
    LineStep client_line(std::string_view line, Actions& out) override;
    void backend_line(std::string_view line, Actions& out) override;
    void backend_unreadable(Actions& out) override;
    [[nodiscard]] std::string pre_tls_greeting() const override {
        return replies::smtp_greeting(settings_.hostname);
    }
    PreTlsStep pre_tls_line(std::string_view line, Actions& out) override;
    [[nodiscard]] std::string_view dialogue_state_name() const noexcept override;

    // smtp_opening.cpp
    // The domain our EHLO/HELO reply must start with (RFC 5321 §4.1.1.1).
    [[nodiscard]] std::string_view our_name() const noexcept {
        return settings_.hostname.empty() ? std::string_view("localhost") : settings_.hostname;
    }
    [[nodiscard]] std::string pre_tls_ehlo_reply() const;
    void greeting_line(std::string_view line, const SmtpLine& reply, Actions& out);
    void greeting_done(Actions& out);
    void forwarding_reply(const SmtpLine& reply, Actions& out);

    // smtp.cpp
    LineStep bdat_line(std::string_view line, std::string_view args, Actions& out);
    void reply_line(std::string_view line, const SmtpLine& reply, Actions& out);
    void ehlo_line(std::string_view line, const SmtpLine& reply, Actions& out);
    void note_ehlo_line(const SmtpLine& reply) noexcept;
    void reply_done(Kind kind, int code, Actions& out);

    PendingQueue<Kind> pending_;
    std::string held_;  // EHLO reply: the newest line, until we know whether it is the last
    // require_tls = false, before the plaintext backend is reached: the client's last EHLO or
    // HELO line, exactly as sent, to be replayed once the backend has greeted us. Cleared at
    // STARTTLS: after TLS the client says EHLO again (RFC 3207 §4.2).
    std::string replay_;
    smtp_content::DataContent content_;  // ClientMode::Data
    std::uint64_t chunk_left_ = 0;
    std::uint32_t reply_lines_ = 0;     // lines of the current backend reply seen so far
    std::uint32_t ehlo_in_flight_ = 0;  // EHLO commands forwarded, not answered yet
    bool chunking_ = false;  // the backend's last EHLO reply offered CHUNKING (RFC 3030 §2)
    ClientMode client_mode_ = ClientMode::Command;
    bool replaying_ = false;  // the replayed EHLO/HELO is out; its reply is read and dropped
};

}  // namespace postern::protocols::smtp_detail
