// libFuzzer target for what the root privileged helper and the unprivileged main process read
// from each other (proxy/privileged_helper.hpp): the helper is root and parses bytes the less
// trusted side wrote, so these decoders must take any input without crashing, hanging or
// allocating far beyond what they were given.
//  - proxy/helper_channel.hpp: byte 0 picks the size of the chunks the rest is fed to a
//    FrameDecoder in (1..64, or all at once when 0). Each frame is exactly the bytes it was read
//    from (encode_frame of it gives them back), missing() is at least 1 while NeedMore, the split
//    changes nothing (the frames equal those of a whole-input decoder) and Broken stays broken.
//  - every payload goes through proxy/helper_orders.hpp's decoders and conf::FileSnapshot:
//    a spawn order decoded re-encodes to one that decodes equal; refuse_spawn allows only an
//    exec spec of its known list with client variables alone; a signal order is SIGTERM or
//    SIGKILL to a positive pid and survives encode_signal; a pid is positive and its decimal
//    digits; a snapshot re-encodes to bytes that decode and re-encode unchanged.
// No single allocation while decoding a payload may exceed 16 bytes per payload byte plus 16 KiB,
// nor while framing 32 per input byte (a list of 64-byte Frames, 5 input bytes each, doubling)
// plus 16 KiB (a sanitizer malloc hook watches): a count field must be checked against what is left
// before anything is sized by it, so 4 billion, or 4096 strings announced in 40 bytes, fails fast.

#include "conf/file_snapshot.hpp"
#include "proxy/exec_connector.hpp"
#include "proxy/helper_channel.hpp"
#include "proxy/helper_orders.hpp"

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sanitizer/allocator_interface.h>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace conf = postern::conf;
namespace proxy = postern::proxy;
using proxy::FrameDecoder;

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(
            std::fprintf(stderr, "helper_messages_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

// The largest allocation since watch() began; the malloc hook has no context to pass, so this
// is the one piece of state the target keeps between calls.
std::size_t largest_allocation = 0;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
bool watching = false;               // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

void on_malloc(const volatile void* /*ptr*/, std::size_t size) {
    if (watching) {
        largest_allocation = std::max(largest_allocation, size);
    }
}

void on_free(const volatile void* /*ptr*/) {}

// Runs `decode` and requires that no allocation in it was out of proportion to `input_size`.
template <typename Decode>
void bounded(std::size_t input_size, std::size_t per_byte, Decode decode,
             int line = __builtin_LINE()) {
    largest_allocation = 0;
    watching = true;
    decode();
    watching = false;
    if (largest_allocation > per_byte * input_size + 16384) {
        static_cast<void>(
            std::fprintf(stderr, "allocated %zu bytes from %zu\n", largest_allocation, input_size));
        require(false, line);
    }
}

// What a config the helper read could name: a program as root, one with the ids left to it.
const std::vector<conf::ExecSpec>& known() {
    static const std::vector<conf::ExecSpec> specs = [] {
        conf::ExecSpec courier;
        courier.argv = {"/usr/sbin/imaplogin", "/usr/bin/imapd", "Maildir"};
        courier.user = "root";
        courier.uid = 0;
        courier.gid = 0;
        courier.env = {{"IMAP_CAPABILITY", "IMAP4rev1"}};
        conf::ExecSpec cat;
        cat.argv = {"/bin/cat"};
        return std::vector<conf::ExecSpec>{courier, cat};
    }();
    return specs;
}

void check_spawn(std::string_view payload) {
    const auto order = proxy::decode_spawn(payload);
    if (!order) {
        return;
    }
    const auto again = proxy::decode_spawn(proxy::encode_spawn(*order));
    require(again.has_value() && *again == *order);
    if (proxy::refuse_spawn(*order, known()).empty()) {
        require(std::find(known().begin(), known().end(), order->exec) != known().end());
        require(std::all_of(order->client_environment.begin(), order->client_environment.end(),
                            [](const std::string& v) { return proxy::is_client_variable(v); }));
    }
}

void check_signal_and_pid(std::string_view payload) {
    if (const auto order = proxy::decode_signal(payload)) {
        require(order->pid > 0 && (order->signal == SIGTERM || order->signal == SIGKILL));
        const auto again = proxy::decode_signal(proxy::encode_signal(*order));
        require(again && again->pid == order->pid && again->signal == order->signal);
    }
    if (const auto pid = proxy::decode_pid(payload)) {
        require(*pid > 0);
        const std::string digits = std::to_string(*pid);
        require(payload.ends_with(digits) &&
                payload.find_first_not_of('0') == payload.size() - digits.size());
    }
}

void check_snapshot(std::string_view payload) {
    const auto snapshot = conf::FileSnapshot::decode(payload);
    if (!snapshot) {
        return;
    }
    // Paths that compare equal collapse into one entry, so the first re-encoding may differ from
    // the payload; from then on it is fixed.
    std::string wire = snapshot->encode();
    const auto again = conf::FileSnapshot::decode(wire);
    require(again != nullptr);
    std::string wire_again = again->encode();
    require(wire_again == wire);
    conf::FileSnapshot::wipe(wire);
    conf::FileSnapshot::wipe(wire_again);
}

// Every frame a decoder yields from `input` fed in chunks of `step` (all at once when 0), each
// checked against the bytes it came from.
std::vector<proxy::Frame> frames_of(std::string_view input, std::size_t step) {
    FrameDecoder decoder;
    std::vector<proxy::Frame> frames;
    std::size_t fed = 0;
    std::size_t taken = 0;  // input bytes the frames so far came from
    for (;;) {
        proxy::Frame frame;
        const FrameDecoder::Status status = decoder.next(frame);
        if (status == FrameDecoder::Status::Broken) {
            proxy::Frame after;
            require(decoder.next(after) == FrameDecoder::Status::Broken);
            return frames;
        }
        if (status == FrameDecoder::Status::Ready) {
            const std::string bytes = proxy::encode_frame(frame.type, frame.payload);
            require(input.substr(taken, bytes.size()) == bytes && taken + bytes.size() <= fed);
            taken += bytes.size();
            frames.push_back(std::move(frame));
            continue;
        }
        require(decoder.missing() >= 1);
        if (fed == input.size()) {
            return frames;
        }
        const std::size_t more =
            step == 0 ? input.size() - fed : std::min(step, input.size() - fed);
        decoder.feed(input.substr(fed, more));
        fed += more;
    }
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    require(__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0);
    return 0;
}

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::size_t step = data[0] % 65U;
    const std::string_view input{reinterpret_cast<const char*>(data) + 1, size - 1};

    std::vector<proxy::Frame> frames;
    bounded(input.size(), 32, [&] { frames = frames_of(input, step); });
    if (step != 0) {
        const std::vector<proxy::Frame> whole = frames_of(input, 0);
        require(whole.size() == frames.size());
        for (std::size_t i = 0; i < frames.size(); ++i) {
            require(whole[i].type == frames[i].type && whole[i].payload == frames[i].payload);
        }
    }
    for (const proxy::Frame& frame : frames) {
        const std::size_t n = frame.payload.size();
        bounded(n, 16, [&] { check_spawn(frame.payload); });
        bounded(n, 16, [&] { check_signal_and_pid(frame.payload); });
        bounded(n, 16, [&] { check_snapshot(frame.payload); });
    }
    return 0;
}
