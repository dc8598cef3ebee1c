// proxy/helper_channel: frames survive any split of the byte stream, a socketpair carries one
// larger than the socket buffers whole, and anything malformed stops the reader.

#include "proxy/helper_channel.hpp"

#include "proxy/event.hpp"

#include <doctest/doctest.h>

#include <array>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace postern::proxy {
namespace {

std::vector<Frame> decode_split(const std::string& wire, std::size_t cut,
                                FrameDecoder::Status& last) {
    FrameDecoder decoder;
    std::vector<Frame> frames;
    for (const std::string_view part :
         {std::string_view{wire}.substr(0, cut), std::string_view{wire}.substr(cut)}) {
        decoder.feed(part);
        Frame frame;
        while ((last = decoder.next(frame)) == FrameDecoder::Status::Ready) {
            frames.push_back(std::move(frame));
        }
    }
    return frames;
}

}  // namespace

TEST_CASE("helper channel: frames decode the same at every split point") {
    const std::string wire = encode_frame(HelperMessage::Snapshot) +
                             encode_frame(HelperMessage::Files, std::string("a\0b", 3)) +
                             encode_frame(HelperMessage::Changed);
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        CAPTURE(cut);
        FrameDecoder::Status last = FrameDecoder::Status::Broken;
        const std::vector<Frame> frames = decode_split(wire, cut, last);
        CHECK(last == FrameDecoder::Status::NeedMore);
        REQUIRE(frames.size() == 3);
        CHECK(frames[0].type == HelperMessage::Snapshot);
        CHECK(frames[0].payload.empty());
        CHECK(frames[1].type == HelperMessage::Files);
        CHECK(frames[1].payload == std::string("a\0b", 3));
        CHECK(frames[2].type == HelperMessage::Changed);
    }
}

TEST_CASE("helper channel: an unknown type or an oversized length breaks the channel") {
    SUBCASE("unknown type") {
        std::string wire = encode_frame(HelperMessage::Changed);
        wire[4] = 42;
        FrameDecoder::Status last = FrameDecoder::Status::Ready;
        CHECK(decode_split(wire, 2, last).empty());
        CHECK(last == FrameDecoder::Status::Broken);
    }
    SUBCASE("length over the bound, before the payload arrives") {
        const std::string wire = std::string{"\xff\xff\xff\x7f", 4} + "\x02";
        FrameDecoder::Status last = FrameDecoder::Status::Ready;
        CHECK(decode_split(wire, 0, last).empty());
        CHECK(last == FrameDecoder::Status::Broken);
    }
    SUBCASE("zero length (no type)") {
        const std::string wire(5, '\0');
        FrameDecoder::Status last = FrameDecoder::Status::Ready;
        CHECK(decode_split(wire, 5, last).empty());
        CHECK(last == FrameDecoder::Status::Broken);
    }
}

TEST_CASE("helper channel: a socketpair carries a frame larger than its buffers, then EOF") {
    std::array<int, 2> fds{-1, -1};
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) == 0);
    UniqueFd reader{fds[0]};
    UniqueFd writer{fds[1]};
    std::string big(std::size_t{8} << 20, 'x');
    big[12345] = '\0';
    std::jthread sender{[&] {
        CHECK(write_frame(writer.get(), HelperMessage::Files, big));
        CHECK(write_frame(writer.get(), HelperMessage::Changed));
        writer.reset();
    }};
    const std::optional<Frame> first = read_frame(reader.get());
    REQUIRE(first.has_value());
    CHECK(first->type == HelperMessage::Files);
    CHECK(first->payload == big);
    const std::optional<Frame> second = read_frame(reader.get());
    REQUIRE(second.has_value());
    CHECK(second->type == HelperMessage::Changed);
    sender.join();
    CHECK_FALSE(read_frame(reader.get()).has_value());
}

TEST_CASE("helper channel: descriptors travel with their frame, and only with it") {
    std::array<int, 2> fds{-1, -1};
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) == 0);
    const UniqueFd reader{fds[0]};
    const UniqueFd writer{fds[1]};
    std::array<int, 2> pipe{-1, -1};
    REQUIRE(::pipe2(pipe.data(), O_CLOEXEC) == 0);
    const UniqueFd pipe_read{pipe[0]};
    UniqueFd pipe_write{pipe[1]};
    const std::array<int, 2> sent{pipe_write.get(), pipe_write.get()};
    REQUIRE(write_frame(writer.get(), HelperMessage::Spawn, "payload", sent));
    REQUIRE(write_frame(writer.get(), HelperMessage::Changed));
    pipe_write.reset();  // the frame holds its own copies
    std::optional<Frame> first = read_frame(reader.get());
    REQUIRE(first.has_value());
    CHECK(first->payload == "payload");
    REQUIRE(first->fds.size() == 2);
    CHECK((::fcntl(first->fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(::write(first->fds[1].get(), "x", 1) == 1);
    char byte = 0;
    CHECK(::read(pipe_read.get(), &byte, 1) == 1);
    CHECK(byte == 'x');
    const std::optional<Frame> second = read_frame(reader.get());
    REQUIRE(second.has_value());
    CHECK(second->fds.empty());
    const std::vector<int> too_many(kMaxFrameFds + 1, pipe_read.get());
    CHECK_FALSE(write_frame(writer.get(), HelperMessage::Spawn, "", too_many));
}

}  // namespace postern::proxy
