#pragma once
// Pure reading of what a ClientHello says it can verify, so the certificate store can serve an
// ECDSA certificate to clients that accept one and RSA to the rest (HAProxy and Envoy do the
// same). Input is the raw extension / cipher-suite bytes; nothing is read outside them.

#include <cstdint>
#include <span>

namespace postern::tls {

struct ClientCaps {
    bool ecdsa = false;  // an ECDSA certificate can be served to this client
};

// `sigalgs`: body of the signature_algorithms extension (empty if absent).
// `ciphers`: the cipher-suite list, two bytes per suite.
[[nodiscard]] ClientCaps read_client_caps(std::span<const std::uint8_t> sigalgs,
                                          std::span<const std::uint8_t> ciphers) noexcept;

}  // namespace postern::tls
