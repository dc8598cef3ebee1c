#include "proxy/helper_channel.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

constexpr std::size_t kHeader = 5;  // length (4) + type (1)

bool known(std::uint8_t type) noexcept {
    return type >= static_cast<std::uint8_t>(HelperMessage::Snapshot) &&
           type <= static_cast<std::uint8_t>(HelperMessage::Started);
}

std::size_t length_of(std::string_view header) noexcept {
    std::size_t length = 0;
    for (int i = 3; i >= 0; --i) {
        length = (length << 8U) | static_cast<unsigned char>(header[static_cast<std::size_t>(i)]);
    }
    return length;
}

}  // namespace

std::string encode_frame(HelperMessage type, std::string_view payload) {
    const std::size_t length = payload.size() + 1;
    std::string out;
    out.reserve(kHeader + payload.size());
    for (int shift = 0; shift < 32; shift += 8) {
        out.push_back(static_cast<char>((length >> shift) & 0xFFU));
    }
    out.push_back(static_cast<char>(type));
    out.append(payload);
    return out;
}

FrameDecoder::Status FrameDecoder::next(Frame& out) {
    if (broken_) {
        return Status::Broken;
    }
    if (buffer_.size() < kHeader) {
        return Status::NeedMore;
    }
    const std::size_t length = length_of(buffer_);
    const auto type = static_cast<std::uint8_t>(buffer_[4]);
    if (length == 0 || length - 1 > kMaxFramePayload || !known(type)) {
        broken_ = true;
        buffer_.clear();
        return Status::Broken;
    }
    if (buffer_.size() < 4 + length) {
        return Status::NeedMore;
    }
    out.type = static_cast<HelperMessage>(type);
    out.payload.assign(buffer_, kHeader, length - 1);
    buffer_.erase(0, 4 + length);
    return Status::Ready;
}

std::size_t FrameDecoder::missing() const noexcept {
    if (buffer_.size() < kHeader) {
        return kHeader - buffer_.size();
    }
    const std::size_t total = 4 + length_of(buffer_);
    return total > buffer_.size() ? total - buffer_.size() : 1;
}

bool write_frame(int fd, HelperMessage type, std::string_view payload, std::span<const int> fds) {
    if (payload.size() > kMaxFramePayload || fds.size() > kMaxFrameFds) {
        return false;
    }
    const std::string frame = encode_frame(type, payload);
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    for (std::size_t sent = 0; sent < frame.size();) {
        iovec iov{.iov_base = const_cast<char*>(frame.data() + sent),  // NOLINT: sendmsg's API
                  .iov_len = frame.size() - sent};
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        if (sent == 0 && !fds.empty()) {  // with the first byte
            message.msg_control = control.data();
            message.msg_controllen = control.size();
            cmsghdr* header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
        }
        const ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

std::optional<Frame> read_frame(int fd) {
    FrameDecoder decoder;
    std::string chunk;
    std::vector<UniqueFd> fds;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFrameFds));
    for (;;) {
        Frame frame;
        switch (decoder.next(frame)) {
            case FrameDecoder::Status::Ready:
                frame.fds = std::move(fds);
                return frame;
            case FrameDecoder::Status::Broken:
                return std::nullopt;
            case FrameDecoder::Status::NeedMore:
                break;
        }
        // Exactly what the frame lacks: the next frame's bytes stay in the socket.
        chunk.resize(std::min<std::size_t>(decoder.missing(), std::size_t{1} << 20));
        iovec iov{.iov_base = chunk.data(), .iov_len = chunk.size()};
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control.data();
        message.msg_controllen = control.size();
        const ssize_t n = ::recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return std::nullopt;
        }
        // Owned first, so that a frame refused below closes what came with it.
        for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
             header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
                const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (std::size_t i = 0; i < count; ++i) {
                    int received = -1;
                    std::memcpy(&received, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
                    fds.emplace_back(received);
                }
            }
        }
        if ((message.msg_flags & MSG_CTRUNC) != 0) {
            return std::nullopt;
        }
        decoder.feed(std::string_view{chunk.data(), static_cast<std::size_t>(n)});
    }
}

}  // namespace postern::proxy
