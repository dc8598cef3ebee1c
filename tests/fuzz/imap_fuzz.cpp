// libFuzzer target for the IMAP machine; the invariants are in machine_fuzz.hpp.

#include "tests/fuzz/machine_fuzz.hpp"

#include <cstddef>
#include <cstdint>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return postern::protocols::fuzz::run(postern::protocols::Protocol::Imap, data, size);
}
