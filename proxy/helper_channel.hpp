#pragma once
// The framing between postern's main process and its privileged helper
// (proxy/privileged_helper.hpp), over a SOCK_STREAM socketpair: each message is a 4-byte
// little-endian length (of what follows), a 1-byte type and the payload. The codec is pure
// (FrameDecoder takes bytes in any split); write_frame/read_frame are its blocking socket ends.
// A frame longer than kMaxFramePayload or of an unknown type breaks the channel: the reader
// stops, as it would at EOF.

#include "conf/file_snapshot.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::proxy {

enum class HelperMessage : std::uint8_t {
    Snapshot = 1,  // main -> helper, no payload: read the config and what it names, now
    Files = 2,     // helper -> main: conf::FileSnapshot::encode()
    Changed = 3,   // helper -> main, no payload: a watched certificate folder changed
};

// A whole snapshot plus room for the paths and lengths around the files.
inline constexpr std::size_t kMaxFramePayload = conf::kMaxSnapshotBytes + (std::size_t{64} << 20);

struct Frame {
    HelperMessage type = HelperMessage::Snapshot;
    std::string payload;
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

// Blocking, whole frame, EINTR retried, no SIGPIPE; false when the peer is gone.
[[nodiscard]] bool write_frame(int fd, HelperMessage type, std::string_view payload = {});

// Blocking; nullopt at EOF, on a read error, or for a broken frame.
[[nodiscard]] std::optional<Frame> read_frame(int fd);

}  // namespace postern::proxy
