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

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace postern::proxy {

class Relay {
public:
    // Back-pressure: a source is not read while its destination holds kHighWater unsent bytes
    // (while relaying, the source is read straight into that destination's buffer). During
    // the dialogue the machine answers some lines itself, so a peer is not read either while
    // the replies owed to it reach kHighWater (a client pipelining CAPA without reading would
    // otherwise grow its replies without bound), and the machine's unconsumed input is capped:
    // kDialogueIn from the client, the machine's longest backend line from the backend (so a
    // line over that limit reaches the machine and ends the session instead of stalling it).
    static constexpr std::size_t kHighWater = BufferPool::kChunk * 2;
    static constexpr std::size_t kDialogueIn = BufferPool::kChunk;

    Relay(Stream& client, Stream& backend, Deadlines& deadlines,
          std::size_t max_backend_line) noexcept
        : client_(client),
          backend_(backend),
          deadlines_(deadlines),
          backend_in_(std::max(kDialogueIn, max_backend_line)) {}

    // During the dialogue: whether either side's bytes may be read or offered to the machine
    // now (what it owes each peer, its replies and what it forwards, is below kHighWater).
    [[nodiscard]] bool dialogue_has_room() const noexcept {
        return client_.out.size() < kHighWater && backend_.out.size() < kHighWater;
    }

    [[nodiscard]] Stream& stream(protocols::Peer peer) noexcept {
        return peer == protocols::Peer::Client ? client_ : backend_;
    }

    // One read from `from` (Again: nothing to do now). Eof and Error mark the side's eof.
    // `answering`: postern answers the client itself (no backend yet), so its answers count
    // where they wait, in postern or in the kernel's send queue: a client that never reads
    // would otherwise be answered for as long as autotuning grows that queue (megabytes each,
    // and the CPU to make them). Such a client is read again once it reads (its next edge).
    [[nodiscard]] Io read(protocols::Peer from, bool relaying, bool answering = false);
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
    std::size_t backend_in_;       // the dialogue's cap on the backend's unconsumed bytes
    std::uint64_t bytes_in_ = 0;   // client -> backend, plaintext
    std::uint64_t bytes_out_ = 0;  // backend -> client, plaintext
    std::string tail_;             // the client's last bytes while relaying
};

}  // namespace postern::proxy
