#include "tls/handshake.hpp"

namespace postern::tls {
namespace {

// OpenSSL's ex_data index for Handshake: one per process, made on first use (thread-safe
// static initialization), the only kind of global the code keeps.
int handshake_index() noexcept {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

}  // namespace

bool attach_handshake(SSL* ssl, Handshake& handshake) noexcept {
    return handshake_index() >= 0 && SSL_set_ex_data(ssl, handshake_index(), &handshake) == 1;
}

Handshake* handshake_of(const SSL* ssl) noexcept {
    if (handshake_index() < 0) {
        return nullptr;
    }
    return static_cast<Handshake*>(SSL_get_ex_data(ssl, handshake_index()));
}

}  // namespace postern::tls
