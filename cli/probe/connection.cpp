#include "cli/probe/connection.hpp"

#include "conf/files.hpp"
#include "proxy/endpoint.hpp"

#include <openssl/err.h>

#include <array>
#include <cerrno>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace postern::cli::probe {

namespace {

// Longest server line accepted, and most bytes read in all: the probe stops a server that
// talks forever instead of waiting for it.
constexpr std::size_t kMaxLine = std::size_t{64} * 1024;
constexpr std::size_t kMaxTotal = std::size_t{1024} * 1024;

// A blocking socket to `ai`'s address whose connect, reads and writes each give up after
// `timeout`: Linux applies SO_SNDTIMEO to connect() too, failing it with EINPROGRESS (socket(7)).
// Returns 0, or the errno of what failed (ETIMEDOUT for the timeout).
int connect_blocking(const addrinfo& ai, std::chrono::milliseconds timeout, proxy::UniqueFd& fd) {
    const timeval tv = proxy::to_timeval(timeout);
    fd = proxy::UniqueFd{::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC, ai.ai_protocol)};
    if (fd.get() < 0 || setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        return errno;
    }
    if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
        return errno == EINPROGRESS ? ETIMEDOUT : errno;
    }
    return 0;
}

}  // namespace

std::string timeout_text(std::chrono::milliseconds timeout) {
    const auto ms = timeout.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

Connection::Read Connection::read_line(std::string& line, std::string& error) {
    while (true) {
        const auto eol = buffer_.find('\n');
        if (eol != std::string::npos) {
            line.assign(buffer_, 0, eol);
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            buffer_.erase(0, eol + 1);
            return Read::Line;
        }
        if (buffer_.size() > kMaxLine) {
            error = "the server sent a line longer than 64 KiB";
            return Read::Error;
        }
        if (total_ > kMaxTotal) {
            error = "the server sent more than 1 MiB without finishing the dialogue";
            return Read::Error;
        }
        std::array<char, 4096> chunk{};
        std::size_t got = 0;
        const Fill r = ssl_ ? ssl_read(chunk.data(), chunk.size(), got, error)
                            : plain_read(chunk.data(), chunk.size(), got, error);
        if (r != Fill::Data) {
            return r == Fill::Eof ? Read::Eof : Read::Error;
        }
        buffer_.append(chunk.data(), got);
        total_ += got;
    }
}

bool Connection::write(std::string_view bytes, std::string& error) {
    while (!bytes.empty()) {
        std::size_t sent = 0;
        if (ssl_) {
            ERR_clear_error();
            const int n = SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size()));
            if (n <= 0) {
                error = "writing to the server: " + failure_of(ssl_.get(), n);
                return false;
            }
            sent = static_cast<std::size_t>(n);
        } else {
            const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                error = "writing to the server: " + io_failure(errno);
                return false;
            }
            sent = static_cast<std::size_t>(n);
        }
        bytes.remove_prefix(sent);
    }
    return true;
}

bool Connection::handshake(const tls::ClientContext& ctx, const std::string& sni,
                           std::string& error) {
    tls::SslPtr ssl = ctx.new_ssl(fd_.get(), sni, error);
    if (!ssl) {
        return false;
    }
    ERR_clear_error();
    const int rc = SSL_connect(ssl.get());
    if (rc != 1) {
        error = failure_of(ssl.get(), rc);
        return false;
    }
    ssl_ = std::move(ssl);
    buffer_.clear();
    return true;
}

void Connection::shutdown() noexcept {
    if (ssl_) {
        ERR_clear_error();
        (void)SSL_shutdown(ssl_.get());
        ERR_clear_error();
    }
}

std::string Connection::io_failure(int error) const {
    if (error == EAGAIN || error == EWOULDBLOCK) {
        return "no answer within " + timeout_text(timeout_) + " (--timeout)";
    }
    return conf::errno_text(error);
}

std::string Connection::failure_of(SSL* ssl, int rc) const {
    const int saved = errno;
    switch (SSL_get_error(ssl, rc)) {
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0) {
                return saved == 0 ? std::string{"the server closed the connection"}
                                  : io_failure(saved);
            }
            return tls::ossl_errors();
        case SSL_ERROR_ZERO_RETURN:
            return "the server closed the TLS session";
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return io_failure(saved);
        default:
            return tls::ossl_errors();
    }
}

Connection::Fill Connection::plain_read(char* data, std::size_t size, std::size_t& got,
                                        std::string& error) {
    while (true) {
        const ssize_t n = ::recv(fd_.get(), data, size, 0);
        if (n > 0) {
            got = static_cast<std::size_t>(n);
            return Fill::Data;
        }
        if (n == 0) {
            return Fill::Eof;
        }
        if (errno != EINTR) {
            error = "reading from the server: " + io_failure(errno);
            return Fill::Error;
        }
    }
}

Connection::Fill Connection::ssl_read(char* data, std::size_t size, std::size_t& got,
                                      std::string& error) {
    ERR_clear_error();
    const int n = SSL_read(ssl_.get(), data, static_cast<int>(size));
    if (n > 0) {
        got = static_cast<std::size_t>(n);
        return Fill::Data;
    }
    const int saved = errno;
    const int code = SSL_get_error(ssl_.get(), n);
    if (code == SSL_ERROR_ZERO_RETURN ||
        (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && saved == 0)) {
        return Fill::Eof;
    }
    errno = saved;
    error = "reading from the server: " + failure_of(ssl_.get(), n);
    return Fill::Error;
}

std::optional<Connection> connect_to(const conf::Endpoint& endpoint,
                                     std::chrono::milliseconds timeout, std::string& address,
                                     std::string& error) {
    const proxy::AddrInfoPtr found = proxy::lookup(endpoint, error);
    if (!found) {
        error.insert(0, "cannot resolve " + endpoint.host + ": ");
        return std::nullopt;
    }
    std::string errors;
    for (const addrinfo* ai = found.get(); ai != nullptr; ai = ai->ai_next) {
        const std::string tried = proxy::to_string(ai->ai_addr);
        proxy::UniqueFd fd;
        const int failure = connect_blocking(*ai, timeout, fd);
        if (failure == 0) {
            address = tried;
            return Connection{std::move(fd), timeout};
        }
        errors += errors.empty() ? "" : "; ";
        errors += "connect " + tried + ": " +
                  (failure == ETIMEDOUT ? "no answer within " + timeout_text(timeout)
                                        : conf::errno_text(failure));
    }
    error = errors.empty() ? "no address for " + endpoint.host : errors;
    return std::nullopt;
}

}  // namespace postern::cli::probe
