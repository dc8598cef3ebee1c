#pragma once
// The framing between postern's main process and its privileged helper
// (proxy/privileged_helper.hpp), over a SOCK_STREAM socketpair: each message is a 4-byte
// little-endian length (of what follows), a 1-byte type and the payload; descriptors travel
// with a frame's first byte (SCM_RIGHTS). The codec is pure (FrameDecoder takes bytes in any
// split); write_frame/read_frame are its blocking socket ends.
// A frame longer than kMaxFramePayload or of an unknown type breaks the channel: the reader
// stops, as it would at EOF.

#include "conf/file_snapshot.hpp"
#include "proxy/event.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postern::proxy {

enum class HelperMessage : std::uint8_t {
    Snapshot = 1,  // main -> helper, no payload: read the config and what it names, now
    Files = 2,     // helper -> main: conf::FileSnapshot::encode()
    Changed = 3,   // helper -> main, no payload: a watched certificate folder changed
    Spawn = 4,     // main -> helper: proxy/helper_orders.hpp SpawnOrder; fds: stdio, stderr
    Spawned = 5,   // helper -> main: the pid in decimal; fd: its pidfd
    Failed = 6,    // helper -> main: why a Spawn or Replace did not happen
    Signal = 7,    // main -> helper, no reply: "pid signal" for a child it spawned
    Replace = 8,   // main -> helper: LISTEN_FDNAMES; fds: the listening sockets, the ready pipe
    Started = 9,   // helper -> main: the replacement's pid in decimal
};

// More than any frame needs (SCM_MAX_FD is 253): a replacement takes one per listening socket.
inline constexpr std::size_t kMaxFrameFds = 250;

// A whole snapshot plus room for the paths and lengths around the files.
inline constexpr std::size_t kMaxFramePayload = conf::kMaxSnapshotBytes + (std::size_t{64} << 20);

struct Frame {
    HelperMessage type = HelperMessage::Snapshot;
    std::string payload;
    std::vector<UniqueFd> fds;  // read_frame only: what came with it, CLOEXEC
};

[[nodiscard]] std::string encode_frame(HelperMessage type, std::string_view payload = {});

class FrameDecoder {
public:
    enum class Status : std::uint8_t { NeedMore, Ready, Broken };

    void feed(std::string_view bytes) { buffer_.append(bytes); }
    // Ready: `out` holds the next frame. Broken stays broken.
    [[nodiscard]] Status next(Frame& out);
    // How many bytes the frame being read still lacks (at least 1 while NeedMore).
    [[nodiscard]] std::size_t missing() const noexcept;

private:
    std::string buffer_;
    bool broken_ = false;
};

// Blocking, whole frame, EINTR retried, no SIGPIPE; false when the peer is gone or `fds` holds
// more than kMaxFrameFds. `fds` are duplicated to the peer, and stay open here.
[[nodiscard]] bool write_frame(int fd, HelperMessage type, std::string_view payload = {},
                               std::span<const int> fds = {});

// Blocking; nullopt at EOF, on a read error, for a broken frame or descriptors cut short.
[[nodiscard]] std::optional<Frame> read_frame(int fd);

}  // namespace postern::proxy
