#include "cli/probe/probe.hpp"

#include "conf/parse_value.hpp"
#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"
#include "cli/probe/dialogue.hpp"
#include "cli/probe/report.hpp"
#include "tls/ossl.hpp"
#include "tls/server_name.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <netdb.h>
#include <ostream>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <system_error>
#include <unistd.h>

namespace postern::cli {

namespace {
using proxy::machine_fqdn;
using proxy::to_string;
using proxy::UniqueFd;

using probe::CertSummary;
using probe::Dialogue;
using probe::ProbeReport;
using probe::Protocol;
using probe::Then;
using tls::BioPtr;
using tls::CFree;
using tls::SslCtxPtr;
using tls::SslPtr;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, CFree<&GENERAL_NAMES_free>>;
using AddrInfoPtr = std::unique_ptr<addrinfo, CFree<&freeaddrinfo>>;

// Longest server line accepted, and most bytes read in all: the probe stops a server that
// talks forever instead of waiting for it.
constexpr std::size_t kMaxLine = std::size_t{64} * 1024;
constexpr std::size_t kMaxTotal = std::size_t{1024} * 1024;

std::string errno_text(int error) {
    return std::generic_category().message(error);
}

std::string timeout_text(std::chrono::milliseconds timeout) {
    const auto ms = timeout.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

// An IPv4 or IPv6 address, without an IPv6 "%zone" (which certificates cannot name).
std::optional<std::string> ip_literal(const std::string& host) {
    const std::string address = host.substr(0, host.find('%'));
    in6_addr v6{};
    in_addr v4{};
    if ((address.size() == host.size() && inet_pton(AF_INET, host.c_str(), &v4) == 1) ||
        inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
        return address;
    }
    return std::nullopt;
}

struct Settings {
    conf::Endpoint endpoint;
    std::optional<Protocol> starttls;
    std::string sni;           // empty: send none
    std::string name_checked;  // host name or IP literal
    bool name_is_ip = false;
    std::chrono::milliseconds timeout{10'000};
};

// Checks the options; returns the usage error, or empty with `s` filled.
std::string settle(const ProbeOptions& o, Settings& s) {
    auto endpoint = conf::parse_endpoint(o.target);
    if (!endpoint.value) {
        return endpoint.error;
    }
    s.endpoint = *endpoint.value;
    if (!o.starttls.empty()) {
        s.starttls = probe::protocol_named(o.starttls);
        if (!s.starttls) {
            return "--starttls: \"" + o.starttls + "\" is not smtp, imap or pop3";
        }
    }
    auto timeout = conf::parse_duration(o.timeout);
    if (!timeout.value) {
        std::int64_t seconds = 0;
        const auto* end = o.timeout.data() + o.timeout.size();
        if (auto [ptr, ec] = std::from_chars(o.timeout.data(), end, seconds);
            ec == std::errc{} && ptr == end) {
            timeout = conf::duration_from_seconds(seconds);
        }
    }
    if (!timeout.value) {
        return "--timeout: " + timeout.error;
    }
    s.timeout = *timeout.value;

    const std::string& name = o.servername.empty() ? s.endpoint.host : o.servername;
    if (auto ip = ip_literal(name)) {
        // RFC 6066 §3: no SNI for an address; the certificate is checked for an iPAddress SAN.
        s.name_checked = *ip;
        s.name_is_ip = true;
        return {};
    }
    auto normalized = tls::normalize_host_name(name);
    if (!normalized) {
        return (o.servername.empty() ? "\"" : "--servername: \"") + name +
               "\" is not a host name or IP address";
    }
    s.sni = *normalized;
    s.name_checked = *normalized;
    return {};
}

// A connected socket, plaintext until handshake(); lines are read with a timeout.
class Connection {
public:
    enum class Read : std::uint8_t { Line, Eof, Error };

    Connection(UniqueFd fd, std::chrono::milliseconds timeout)
        : fd_(std::move(fd)), timeout_(timeout) {}

    // One line without its CRLF (or bare LF).
    [[nodiscard]] Read read_line(std::string& line, std::string& error) {
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

    [[nodiscard]] bool write(std::string_view bytes, std::string& error) {
        while (!bytes.empty()) {
            std::size_t sent = 0;
            if (ssl_) {
                ERR_clear_error();
                const int n = SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size()));
                if (n <= 0) {
                    error = "writing to the server: " + ssl_failure(n);
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

    // Bytes read but not yet returned as lines.
    [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size(); }

    // Client handshake on the socket. Verification failures do not stop it (the result is
    // read afterwards); only a failed handshake returns false with `error` set.
    [[nodiscard]] bool handshake(SSL_CTX* ctx, const std::string& sni, std::string& error) {
        ERR_clear_error();
        SslPtr ssl{SSL_new(ctx)};
        // SSL_set_tlsext_host_name() is a macro with a C cast; this is the call it makes.
        if (!ssl || SSL_set_fd(ssl.get(), fd_.get()) != 1 ||
            (!sni.empty() &&
             SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      const_cast<char*>(sni.c_str())) != 1)) {
            error = tls::ossl_errors();
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

    [[nodiscard]] SSL* ssl() const noexcept { return ssl_.get(); }

    // Sends close_notify without waiting for the server's.
    void shutdown() noexcept {
        if (ssl_) {
            ERR_clear_error();
            (void)SSL_shutdown(ssl_.get());
            ERR_clear_error();
        }
    }

private:
    enum class Fill : std::uint8_t { Data, Eof, Error };  // one read from the socket or TLS

    [[nodiscard]] std::string io_failure(int error) const {
        if (error == EAGAIN || error == EWOULDBLOCK) {
            return "no answer within " + timeout_text(timeout_) + " (--timeout)";
        }
        return errno_text(error);
    }

    [[nodiscard]] std::string failure_of(SSL* ssl, int rc) const {
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

    [[nodiscard]] std::string ssl_failure(int rc) const { return failure_of(ssl_.get(), rc); }

    Fill plain_read(char* data, std::size_t size, std::size_t& got, std::string& error) {
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

    Fill ssl_read(char* data, std::size_t size, std::size_t& got, std::string& error) {
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
        error = "reading from the server: " + ssl_failure(n);
        return Fill::Error;
    }

    UniqueFd fd_;
    SslPtr ssl_;  // set by handshake(); uses fd_, which it does not own
    std::chrono::milliseconds timeout_;
    std::string buffer_;
    std::size_t total_ = 0;
};

// Tries every address of the endpoint in turn; the first that connects within the timeout.
std::optional<Connection> connect_to(const Settings& s, ProbeReport& report) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(s.endpoint.port);
    if (const int rc = getaddrinfo(s.endpoint.host.c_str(), port.c_str(), &hints, &found);
        rc != 0) {
        report.error = "cannot resolve " + s.endpoint.host + ": " + gai_strerror(rc);
        return std::nullopt;
    }
    const AddrInfoPtr owner{found};
    const timeval tv = proxy::to_timeval(s.timeout);
    std::string errors;
    for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
        const std::string address = to_string(ai->ai_addr);
        UniqueFd fd{::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                             ai->ai_protocol)};
        int error = 0;
        if (fd.get() < 0) {
            error = errno;
        } else if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS) {
                pollfd p{fd.get(), POLLOUT, 0};
                const int n = ::poll(&p, 1, static_cast<int>(s.timeout.count()));
                socklen_t len = sizeof(error);
                if (n == 0) {
                    error = ETIMEDOUT;
                } else if (n < 0 || getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
                    error = errno;
                }
            }
        }
        if (error == 0) {
            const int flags = fcntl(fd.get(), F_GETFL);
            if (flags < 0 || fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0 ||
                setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
                setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
                error = errno;
            }
        }
        if (error == 0) {
            report.address = address;
            return Connection{std::move(fd), s.timeout};
        }
        errors += errors.empty() ? "" : "; ";
        errors += "connect " + address + ": " +
                  (error == ETIMEDOUT ? "no answer within " + timeout_text(s.timeout)
                                      : errno_text(error));
    }
    report.error = errors.empty() ? "no address for " + s.endpoint.host : errors;
    return std::nullopt;
}

std::string asn1_string(const ASN1_STRING* s) {
    return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
            static_cast<std::size_t>(ASN1_STRING_length(s))};
}

std::string name_text(const X509_NAME* name) {
    BioPtr bio{BIO_new(BIO_s_mem())};
    if (!bio || name == nullptr) {
        return {};
    }
    // RFC 2253 order (CN first), UTF-8 kept as it is; display_text() escapes what is unsafe.
    if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        return {};
    }
    // BIO_get_mem_data() is a macro with a C cast; this is the call it makes.
    char* data = nullptr;
    const long len = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
    return len > 0 ? std::string{data, static_cast<std::size_t>(len)} : std::string{};
}

std::string ip_text(const ASN1_OCTET_STRING* ip) {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    const unsigned char* data = ASN1_STRING_get0_data(ip);
    const int len = ASN1_STRING_length(ip);
    if ((len == 4 && inet_ntop(AF_INET, data, buf.data(), buf.size()) != nullptr) ||
        (len == 16 && inet_ntop(AF_INET6, data, buf.data(), buf.size()) != nullptr)) {
        return buf.data();
    }
    return "(" + std::to_string(len) + "-byte address)";
}

CertSummary summarize(X509* cert) {
    CertSummary out;
    out.subject = name_text(X509_get_subject_name(cert));
    out.issuer = name_text(X509_get_issuer_name(cert));
    GeneralNamesPtr sans{static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))};
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
            if (gn->type == GEN_DNS) {
                out.dns_names.push_back(asn1_string(gn->d.dNSName));
            } else if (gn->type == GEN_IPADD) {
                out.ip_addresses.push_back(ip_text(gn->d.iPAddress));
            }
        }
    }
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    std::tm tm{};
    if (not_after != nullptr && ASN1_TIME_to_tm(not_after, &tm) == 1) {
        std::array<char, 32> text{};
        if (std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S UTC", &tm) > 0) {
            out.not_after = text.data();
        }
        if (std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
            out.not_after_iso = text.data();
        }
        int days = 0;
        int seconds = 0;
        if (ASN1_TIME_diff(&days, &seconds, nullptr, not_after) == 1) {
            // floor, so that a certificate expired an hour ago has -1 days left, not 0
            const std::int64_t total = std::int64_t{days} * 86400 + seconds;
            out.days_left = total >= 0 ? total / 86400 : -((-total + 86399) / 86400);
        }
    }
    return out;
}

// TLS version, cipher, chain, name match and verify result of the finished handshake.
void record_session(SSL* ssl, const Settings& s, ProbeReport& report) {
    report.tls_version = SSL_get_version(ssl);
    report.cipher = SSL_get_cipher_name(ssl);
    if (const STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl)) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            report.chain.push_back(summarize(sk_X509_value(chain, i)));
        }
    }
    X509* leaf = SSL_get0_peer_certificate(ssl);
    if (leaf != nullptr) {
        report.name_matches =
            s.name_is_ip ? X509_check_ip_asc(leaf, s.name_checked.c_str(), 0) == 1
                         : X509_check_host(leaf, s.name_checked.data(), s.name_checked.size(),
                                           X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
    }
    const long result = SSL_get_verify_result(ssl);
    report.verified = leaf != nullptr && result == X509_V_OK;
    report.verify_result =
        leaf == nullptr ? "no certificate" : X509_verify_cert_error_string(result);
}

SslCtxPtr client_context(const ProbeOptions& o, std::string& error) {
    ERR_clear_error();
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
        error = "cannot create a TLS context: " + tls::ossl_errors();
        return nullptr;
    }
    // Verify, but finish the handshake either way: the report says what failed.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    const int loaded = o.cafile.empty() ? SSL_CTX_set_default_verify_paths(ctx.get())
                                        : SSL_CTX_load_verify_file(ctx.get(), o.cafile.c_str());
    if (loaded != 1) {
        error = o.cafile.empty() ? "cannot load the system trust store: " + tls::ossl_errors()
                                 : "--cafile " + o.cafile + ": " + tls::ossl_errors();
        return nullptr;
    }
    return ctx;
}

// Runs the dialogue and the handshake, filling the report as far as it gets.
void talk(const Settings& s, SSL_CTX* ctx, ProbeReport& report) {
    auto conn = connect_to(s, report);
    if (!conn) {
        return;
    }
    Dialogue dialogue{s.starttls, machine_fqdn()};
    probe::Step step = dialogue.start();
    std::string line;
    bool done = false;
    while (!done) {
        if (!step.send.empty() && !conn->write(step.send, report.error)) {
            break;
        }
        switch (step.then) {
            case Then::Read:
                switch (conn->read_line(line, report.error)) {
                    case Connection::Read::Line:
                        step = dialogue.on_line(line);
                        break;
                    case Connection::Read::Eof:
                        step = dialogue.on_eof();
                        break;
                    case Connection::Read::Error:
                        done = true;
                        break;
                }
                break;
            case Then::StartTls:
                if (conn->buffered() != 0) {
                    // Whatever arrives before the handshake is not protected by it (the client-side
                    // twin of CVE-2011-0411): a server that does this is broken or attacked.
                    report.error = "the server sent " + std::to_string(conn->buffered()) +
                                   " bytes after its STARTTLS reply, before TLS; refusing them";
                    done = true;
                    break;
                }
                report.tls_attempted = true;
                if (!conn->handshake(ctx, s.sni, report.handshake_error)) {
                    if (report.handshake_error.empty()) {
                        report.handshake_error = "unknown error";
                    }
                    done = true;
                    break;
                }
                record_session(conn->ssl(), s, report);
                step = dialogue.on_tls_ready();
                break;
            case Then::Close:
                done = true;
                break;
            case Then::Fail:
                report.error = step.error;
                done = true;
                break;
        }
    }
    report.protocol = dialogue.protocol();
    report.capabilities_read = dialogue.capabilities_read();
    report.capabilities = dialogue.capabilities();
    report.capabilities_note = dialogue.capabilities_note();
    conn->shutdown();
}

}  // namespace

int run_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err) {
    Settings settings;
    if (const auto usage = settle(options, settings); !usage.empty()) {
        err << "postern probe: " << probe::display_text(usage) << '\n';
        return probe::exit_code(probe::Verdict::Error);
    }
    std::string error;
    const SslCtxPtr ctx = client_context(options, error);
    if (!ctx) {
        err << "postern probe: " << probe::display_text(error) << '\n';
        return probe::exit_code(probe::Verdict::Error);
    }
    // A server that resets the connection must not kill the probe while OpenSSL writes to it.
    (void)std::signal(SIGPIPE, SIG_IGN);

    ProbeReport report;
    report.target = options.target;
    report.starttls = settings.starttls;
    report.servername = settings.sni;
    report.name_checked = settings.name_checked;
    report.trust = options.cafile.empty() ? "the system store" : "--cafile " + options.cafile;
    talk(settings, ctx.get(), report);

    const auto outcome = probe::judge(report);
    out << (options.json ? probe::format_json(report, outcome)
                         : probe::format_text(report, outcome));
    out.flush();
    if (outcome.verdict != probe::Verdict::Ok) {
        err << "postern probe: " << probe::display_text(outcome.reason) << '\n';
    }
    return probe::exit_code(outcome.verdict);
}

}  // namespace postern::cli
