#include "tls/alpn.hpp"

#include "tls/handshake.hpp"

#include <algorithm>

namespace postern::tls {
namespace {

std::string_view as_text(std::span<const std::uint8_t> bytes) noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// OpenSSL calls this only when the client sent the extension, after the ClientHello callback
// switched the SSL to its certificate's context, which is whose callback runs.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* /*arg*/) noexcept {
    Handshake* hs = handshake_of(ssl);
    if (hs == nullptr) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;  // no SSL of postern's lacks one: fail closed
    }
    const std::span<const std::uint8_t> list{in, inlen};
    const std::string_view wanted = alpn_id(hs->protocol);
    if (const auto found = find_alpn(list, wanted)) {
        *out = found->data();  // points into `in`, as OpenSSL allows; it copies the selection
        *outlen = static_cast<unsigned char>(found->size());
        return SSL_TLSEXT_ERR_OK;
    }
    try {
        hs->refusal = "ALPN: ";
        hs->refusal.append(wanted).append(" not offered (client offered: ");
        hs->refusal.append(alpn_list_text(list)).append(")");
    } catch (...) {  // allocation failure: no exception may cross OpenSSL's frames
        hs->refusal.clear();
    }
    // OpenSSL sends no_application_protocol for this result (RFC 7301 §3.2).
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

std::string_view alpn_id(protocols::Protocol protocol) noexcept {
    // Wire ids, not the config's words, though they happen to be spelled alike.
    switch (protocol) {
        case protocols::Protocol::Imap:
            return "imap";
        case protocols::Protocol::Pop3:
            return "pop3";
        case protocols::Protocol::Smtp:
            return "smtp";
    }
    return {};
}

std::optional<std::span<const std::uint8_t>> find_alpn(std::span<const std::uint8_t> list,
                                                       std::string_view id) noexcept {
    while (!list.empty()) {
        const std::size_t len = list.front();
        if (len == 0 || len >= list.size()) {
            return std::nullopt;  // RFC 7301: names are 1..255 bytes; a short tail is malformed
        }
        const auto name = list.subspan(1, len);
        if (as_text(name) == id) {
            return name;
        }
        list = list.subspan(1 + len);
    }
    return std::nullopt;
}

std::string alpn_list_text(std::span<const std::uint8_t> list, std::size_t max) {
    std::string text;
    while (!list.empty()) {
        const std::size_t len = std::min<std::size_t>(list.front(), list.size() - 1);
        if (!text.empty()) {
            text += ',';
        }
        text += as_text(list.subspan(1, len));
        list = list.subspan(1 + len);
        if (text.size() > max) {
            break;
        }
    }
    if (text.empty()) {
        return "nothing";
    }
    if (text.size() > max || !list.empty()) {
        text.resize(std::min(text.size(), max));
        text += "...";
    }
    return text;
}

void install_alpn(SSL_CTX* ctx) noexcept {
    SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, nullptr);
}

}  // namespace postern::tls
