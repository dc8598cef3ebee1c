#include "tls/client_caps.hpp"

namespace postern::tls {
namespace {

constexpr std::uint8_t kSigEcdsa = 0x03;  // RFC 5246 SignatureAlgorithm.ecdsa / RFC 8446 0x0403..

bool sigalgs_allow_ecdsa(std::span<const std::uint8_t> ext) noexcept {
    if (ext.size() < 2) {
        return false;
    }
    const std::size_t len = (std::size_t{ext[0]} << 8U) | ext[1];
    if (len + 2 != ext.size() || len % 2 != 0) {
        return false;
    }
    for (std::size_t i = 2; i + 1 < ext.size(); i += 2) {
        // ecdsa_secp256r1_sha256 (0x0403) .. ecdsa_sha1 (0x0203): second byte is "ecdsa".
        if (ext[i + 1] == kSigEcdsa && ext[i] >= 0x02 && ext[i] <= 0x06) {
            return true;
        }
    }
    return false;
}

// TLS 1.3 suites sign with whatever sigalgs allow; TLS 1.2 needs an ECDHE_ECDSA suite.
bool suites_allow_ecdsa(std::span<const std::uint8_t> ciphers) noexcept {
    for (std::size_t i = 0; i + 1 < ciphers.size(); i += 2) {
        const unsigned suite = (unsigned{ciphers[i]} << 8U) | ciphers[i + 1];
        const bool tls13 = suite >= 0x1301 && suite <= 0x1305;
        const bool ecdhe_ecdsa = (suite >= 0xC006 && suite <= 0xC00A) ||  // RFC 4492
                                 suite == 0xC023 || suite == 0xC024 ||    // RFC 5289 CBC
                                 suite == 0xC02B || suite == 0xC02C ||    // RFC 5289 GCM
                                 suite == 0xCCA9;                         // RFC 7905 ChaCha
        if (tls13 || ecdhe_ecdsa) {
            return true;
        }
    }
    return false;
}

}  // namespace

ClientCaps read_client_caps(std::span<const std::uint8_t> sigalgs,
                            std::span<const std::uint8_t> ciphers) noexcept {
    // Without the extension a TLS 1.2 client implies SHA-1 with RSA or ECDSA by suite (RFC 5246
    // §7.4.1.4.1); the suite check alone decides then.
    const bool sig_ok = sigalgs.empty() || sigalgs_allow_ecdsa(sigalgs);
    return ClientCaps{.ecdsa = sig_ok && suites_allow_ecdsa(ciphers)};
}

}  // namespace postern::tls
