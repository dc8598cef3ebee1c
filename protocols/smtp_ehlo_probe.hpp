#pragma once
// The EHLO learner's side of its short dialogue with an SMTP backend (proxy/backend_ehlo.cpp),
// without the socket: the greeting, the reply to our EHLO, the reply to QUIT, one line at a
// time. Bounded while reading: a reply of more than kMaxReplyLines lines fails the probe at the
// line that crosses the limit (the caller also bounds each line), so a backend that never ends
// its reply cannot grow postern; the extensions of a reply that fits are all kept.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::protocols {

class EhloProbe {
public:
    // Per reply, server name line included. Postfix 3.7 answers EHLO with 12 lines.
    static constexpr std::size_t kMaxReplyLines = 64;

    enum class Next : std::uint8_t {
        Read,      // wait for the next line
        SendEhlo,  // the greeting is complete (2xx): send "EHLO <name>"
        SendQuit,  // the EHLO reply is complete (2xx): take_extensions(), then send QUIT
        Done,      // the QUIT reply is complete
        Failed,    // failure() says why; feed no more lines
    };

    // One line without its terminator.
    [[nodiscard]] Next on_line(std::string_view line);
    // After Failed: why, for the log.
    [[nodiscard]] const char* failure() const noexcept { return failure_; }
    // After SendQuit: the extension lines of the EHLO reply (their text after "250-"), in order,
    // without the first line, which names the server (RFC 5321 §4.1.1.1).
    [[nodiscard]] std::vector<std::string> take_extensions() noexcept;

private:
    enum class Step : std::uint8_t { Greeting, Ehlo, Quit, Over };

    Next fail(const char* why) noexcept;

    std::vector<std::string> extensions_;
    const char* failure_ = "";
    std::size_t lines_ = 0;  // of the reply being read
    Step step_ = Step::Greeting;
};

}  // namespace postern::protocols
