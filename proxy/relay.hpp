#pragma once
// A session's byte mover: reads one side, during the dialogue into its own input for the
// machine, once relaying straight into the other side's output; writes what each side is
// owed; keeps back-pressure (a side is not read while the other holds kHighWater unsent
// bytes); counts the plaintext bytes each way; keeps the client's last bytes while relaying
// (protocols/goodbye.hpp) and the traffic timestamps (proxy/deadlines.hpp). What a read or a
// write error means for the session is the session's business: it gets the Io result.

#include "protocols/action.hpp"
#include "protocols/protocol.hpp"
#include "proxy/deadlines.hpp"
#include "proxy/stream.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace postern::proxy {

class Relay {
public:
    // Back-pressure: a source is not read while its destination holds kHighWater unsent bytes
    // (while relaying, the source is read straight into that destination's buffer). During
    // the dialogue the machine's unconsumed input is capped at kDialogueIn as well.
    static constexpr std::size_t kHighWater = BufferPool::kChunk * 2;
    static constexpr std::size_t kDialogueIn = BufferPool::kChunk;

    Relay(Stream& client, Stream& backend, Deadlines& deadlines) noexcept
        : client_(client), backend_(backend), deadlines_(deadlines) {}

    [[nodiscard]] Stream& stream(protocols::Peer peer) noexcept {
        return peer == protocols::Peer::Client ? client_ : backend_;
    }

    // One read from `from` (Again: nothing to do now). Eof and Error mark the side's eof.
    [[nodiscard]] Io read(protocols::Peer from, bool relaying);
    // Writes what `to` is owed (Again: nothing to do now).
    [[nodiscard]] Io flush(protocols::Peer to);

    // The machine's replies and forwarded lines.
    void send(protocols::Peer to, std::string_view bytes);
    // The machine consumed `n` of the client's bytes (forwarded or answered).
    void client_consumed(std::size_t n) noexcept { bytes_in_ += n; }
    // Passthrough: what the machine left unread belongs to the other side now.
    void start();

    // The client's last bytes end with its protocol's goodbye (the backend's close is a quit).
    [[nodiscard]] bool client_said_goodbye(protocols::Protocol protocol) const noexcept;
    [[nodiscard]] std::uint64_t bytes_in() const noexcept { return bytes_in_; }
    [[nodiscard]] std::uint64_t bytes_out() const noexcept { return bytes_out_; }

private:
    void remember_tail(const ByteBuffer& sent, std::size_t length);

    Stream& client_;
    Stream& backend_;
    Deadlines& deadlines_;
    std::uint64_t bytes_in_ = 0;   // client -> backend, plaintext
    std::uint64_t bytes_out_ = 0;  // backend -> client, plaintext
    std::string tail_;             // the client's last bytes while relaying
};

}  // namespace postern::proxy
