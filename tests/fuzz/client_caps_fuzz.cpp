// libFuzzer target for tls/client_caps.hpp, which reads the signature_algorithms extension and
// the cipher-suite list straight out of an untrusted ClientHello to pick ECDSA or RSA. Byte 0 is
// the length of the extension body, taken from the bytes after it; the rest is the cipher list.
// Each part is copied into a buffer of its own exact size, so ASan sees any read past either.
// Invariants, besides "no crash, out-of-bounds read or UB": the verdict is the extension's
// verdict and the suites' verdict, each read alone (TLS_AES_128_GCM_SHA256 and no extension
// stand in for "the other part allows ECDSA"); the order of the suites, and a last odd byte,
// change nothing; an extension that allows ECDSA is well formed (even length that matches its
// prefix, at least one algorithm); appending ecdsa_secp256r1_sha256 to a well-formed extension
// makes it allow ECDSA.

#include "tls/client_caps.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(
            std::fprintf(stderr, "client_caps_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

bool ecdsa(const Bytes& sigalgs, const Bytes& ciphers) {
    return postern::tls::read_client_caps(sigalgs, ciphers).ecdsa;
}

bool well_formed(const Bytes& sigalgs) {
    return sigalgs.size() >= 2 && sigalgs.size() % 2 == 0 &&
           ((std::size_t{sigalgs[0]} << 8U) | sigalgs[1]) + 2 == sigalgs.size();
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::span<const std::uint8_t> input{data + 1, size - 1};
    const std::size_t split = std::min<std::size_t>(data[0], input.size());
    const Bytes sigalgs(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(split));
    const Bytes ciphers(input.begin() + static_cast<std::ptrdiff_t>(split), input.end());

    const bool verdict = ecdsa(sigalgs, ciphers);
    const bool sig_ok = ecdsa(sigalgs, Bytes{0x13, 0x01});
    const bool suites_ok = ecdsa(Bytes{}, ciphers);
    require(verdict == (sig_ok && suites_ok));
    require(!sig_ok || sigalgs.empty() || (well_formed(sigalgs) && sigalgs.size() >= 4));

    Bytes whole_suites(ciphers.begin(),
                       ciphers.end() - static_cast<std::ptrdiff_t>(ciphers.size() % 2));
    require(suites_ok == ecdsa(Bytes{}, whole_suites));
    Bytes reversed;
    for (std::size_t i = whole_suites.size(); i >= 2; i -= 2) {
        reversed.push_back(whole_suites[i - 2]);
        reversed.push_back(whole_suites[i - 1]);
    }
    require(suites_ok == ecdsa(Bytes{}, reversed));

    if (well_formed(sigalgs)) {  // at most 255 bytes here: the length cannot overflow
        Bytes more = sigalgs;
        more.push_back(0x04);  // ecdsa_secp256r1_sha256 (RFC 8446 §4.2.3)
        more.push_back(0x03);
        const std::size_t len = more.size() - 2;
        more[0] = static_cast<std::uint8_t>(len >> 8U);
        more[1] = static_cast<std::uint8_t>(len & 0xFFU);
        require(ecdsa(more, Bytes{0x13, 0x01}));
    }
    return 0;
}
