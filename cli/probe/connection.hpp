#pragma once
// The probe's socket: a blocking TCP connection with a timeout on the connect and on every read
// and write (SO_RCVTIMEO/SO_SNDTIMEO), read as lines, plaintext until handshake() puts TLS on
// it. Limits what a server may send so one that talks forever cannot hold the probe. Messages
// are ready for the report: "no answer within 10s (--timeout)", "Connection refused".

#include "conf/config.hpp"
#include "proxy/event.hpp"
#include "tls/client_context.hpp"
#include "tls/ossl.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::cli::probe {

// "10s", or "500ms" when the timeout is not whole seconds.
[[nodiscard]] std::string timeout_text(std::chrono::milliseconds timeout);

class Connection {
public:
    enum class Read : std::uint8_t { Line, Eof, Error };

    Connection(proxy::UniqueFd fd, std::chrono::milliseconds timeout)
        : fd_(std::move(fd)), timeout_(timeout) {}

    // One line without its CRLF (or bare LF).
    [[nodiscard]] Read read_line(std::string& line, std::string& error);

    [[nodiscard]] bool write(std::string_view bytes, std::string& error);

    // Bytes read but not yet returned as lines.
    [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size(); }

    // Client handshake on the socket. Verification failures do not stop it (the result is
    // read afterwards); only a failed handshake returns false with `error` set.
    [[nodiscard]] bool handshake(const tls::ClientContext& ctx, const std::string& sni,
                                 std::string& error);

    [[nodiscard]] SSL* ssl() const noexcept { return ssl_.get(); }

    // Sends close_notify without waiting for the server's.
    void shutdown() noexcept;

private:
    enum class Fill : std::uint8_t { Data, Eof, Error };  // one read from the socket or TLS

    [[nodiscard]] std::string io_failure(int error) const;
    [[nodiscard]] std::string failure_of(SSL* ssl, int rc) const;
    Fill plain_read(char* data, std::size_t size, std::size_t& got, std::string& error);
    Fill ssl_read(char* data, std::size_t size, std::size_t& got, std::string& error);

    proxy::UniqueFd fd_;
    tls::SslPtr ssl_;  // set by handshake(); uses fd_, which it does not own
    std::chrono::milliseconds timeout_;
    std::string buffer_;
    std::size_t total_ = 0;
};

// Tries every address of `endpoint` in turn; the first that connects within `timeout`, with
// the address connected to ("127.0.0.1:993") in `address`. nullopt with `error` set ("connect
// ADDRESS: why" for each address tried, or the resolver's reason) when none does.
[[nodiscard]] std::optional<Connection> connect_to(const conf::Endpoint& endpoint,
                                                   std::chrono::milliseconds timeout,
                                                   std::string& address, std::string& error);

}  // namespace postern::cli::probe
