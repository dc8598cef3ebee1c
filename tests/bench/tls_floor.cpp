// postern-bench-floor: the heap OpenSSL alone needs for one idle, established TLS 1.3 server
// connection, the floor under any TLS proxy's idle memory per session. scripts/bench runs it
// next to `openssl speed`; tests/bench/README.md explains the figure.
//
//   postern-bench-floor --sessions 2000
//
// It makes an ECDSA P-256 key and a self-signed certificate in memory and a server context set
// up as postern's (tls/policy.cpp: TLS 1.3, SSL_MODE_RELEASE_BUFFERS, one ticket). Then, for
// each session, over a non-blocking socketpair in this one process: a full handshake (the client
// offers X25519 and TLS_AES_128_GCM_SHA256 only, as the load generator does), the server writes
// an IMAP greeting, the client reads it, and the server makes one read that would block, as a
// mail server waiting for the first command does. The client's SSL and descriptor are freed;
// the server's are kept. The figure is glibc's heap in use (mallinfo2: uordblks + hblkhd) after
// minus before, over the sessions. It leaves out what a proxy adds on top: its own session
// state, event buffers, the backend connection, SNI switching to a certificate's context.
//
// Prints one JSON line: {"sessions":N,"bytes_per_session":B,"allocations_per_session":A}.
// allocations_per_session counts OpenSSL's live allocations (CRYPTO_set_mem_functions); it is
// left out if OpenSSL had allocated before the counting hooks could be installed.

#include "tests/bench/handles.hpp"

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <vector>

namespace {

using namespace postern::bench;

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, CFree<&EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, CFree<&X509_free>>;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

constexpr std::string_view kGreeting = "* OK ready\r\n";
constexpr const char* kServerName = "mail.bench.test";
constexpr const char* kCipherSuite = "TLS_AES_128_GCM_SHA256";
constexpr std::array<unsigned char, 7> kSessionIdContext{'p', 'o', 's', 't', 'e', 'r', 'n'};
constexpr int kMaxRounds = 100;  // steps a handshake or read may take over a socketpair
constexpr int kWarmups = 2;      // connections made and freed before the baseline
constexpr rlim_t kSpareDescriptors = 16;

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what + openssl_errors()) {}

private:
    static std::string openssl_errors() {
        std::string text;
        while (const unsigned long code = ERR_get_error()) {
            std::array<char, 256> buf{};
            ERR_error_string_n(code, buf.data(), buf.size());
            text += text.empty() ? ": " : "; ";
            text += buf.data();
        }
        return text;
    }
};

// ---------------------------------------------------------------- counting OpenSSL's allocations

// Live allocations made through OpenSSL's allocator. One thread, so no atomics.
std::int64_t live_allocations = 0;

void* counting_malloc(std::size_t size, const char* /*file*/, int /*line*/) noexcept {
    void* p = std::malloc(size);
    if (p != nullptr) {
        ++live_allocations;
    }
    return p;
}

void* counting_realloc(void* old, std::size_t size, const char* file, int line) noexcept {
    if (old == nullptr) {
        return counting_malloc(size, file, line);
    }
    if (size == 0) {
        --live_allocations;
        std::free(old);
        return nullptr;
    }
    return std::realloc(old, size);  // the count is unchanged, whether or not it moves
}

void counting_free(void* p, const char* /*file*/, int /*line*/) noexcept {
    if (p != nullptr) {
        --live_allocations;
    }
    std::free(p);
}

struct Heap {
    std::int64_t bytes = 0;        // glibc's heap in use: arena plus mmapped blocks
    std::int64_t allocations = 0;  // OpenSSL's live allocations
};

Heap heap_now() {
    const struct mallinfo2 info = ::mallinfo2();
    return {static_cast<std::int64_t>(info.uordblks + info.hblkhd), live_allocations};
}

// ---------------------------------------------------------------- contexts

EvpPkeyPtr make_key() {
    EvpPkeyPtr key{EVP_EC_gen("P-256")};
    if (!key) {
        throw Error("cannot make an ECDSA P-256 key");
    }
    return key;
}

X509Ptr make_certificate(EVP_PKEY* key) {
    X509Ptr cert{X509_new()};
    if (!cert) {
        throw Error("cannot make a certificate");
    }
    X509* c = cert.get();
    X509_NAME* name = X509_get_subject_name(c);
    if (X509_set_version(c, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(c), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(c), 0) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(c), 24L * 3600) == nullptr ||
        X509_set_pubkey(c, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(kServerName), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(c, name) != 1 || X509_sign(c, key, EVP_sha256()) <= 0) {
        throw Error("cannot make a self-signed certificate");
    }
    return cert;
}

// The settings postern's apply_policy() makes (tls/policy.cpp), with TLS 1.3 as the minimum.
SslCtxPtr make_server_context(EVP_PKEY* key, X509* cert) {
    SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext.data(),
                                       kSessionIdContext.size()) != 1 ||
        SSL_CTX_use_certificate(ctx.get(), cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx.get(), key) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
        throw Error("server context");
    }
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE |
                                       SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(ctx.get(), 1);
    return ctx;
}

// What the load generator offers (tests/bench/tls_client.cpp), so every figure is for the same
// negotiated connection.
SslCtxPtr make_client_context() {
    SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx.get(), kCipherSuite) != 1 ||
        SSL_CTX_set1_groups_list(ctx.get(), "X25519") != 1) {
        throw Error("client context");
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    return ctx;
}

// ---------------------------------------------------------------- one connection

// Both ends of one socketpair. Each SSL is declared after its descriptor, so it is freed first.
struct Pair {
    UniqueFd client_fd;
    SslPtr client;
    UniqueFd server_fd;
    SslPtr server;
};

Pair open_pair(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
    std::array<int, 2> fds{};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) != 0) {
        throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
    }
    Pair p{UniqueFd{fds[0]}, SslPtr{SSL_new(client_ctx)}, UniqueFd{fds[1]},
           SslPtr{SSL_new(server_ctx)}};
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is the call it makes.
    if (!p.client || !p.server || SSL_set_fd(p.client.get(), p.client_fd.get()) != 1 ||
        SSL_set_fd(p.server.get(), p.server_fd.get()) != 1 ||
        SSL_ctrl(p.client.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(kServerName)) != 1) {
        throw Error("SSL_new");
    }
    SSL_set_connect_state(p.client.get());
    SSL_set_accept_state(p.server.get());
    return p;
}

// True once an SSL call succeeded, false if it would block; throws on anything else.
bool finished(SSL* ssl, int rc, const char* what) {
    if (rc > 0) {
        return true;
    }
    const int error = SSL_get_error(ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        return false;
    }
    throw Error(std::string(what) + " failed (SSL_get_error " + std::to_string(error) + ")");
}

// Handshake, greeting, and the server's first read, which finds nothing and would block.
void establish(Pair& p) {
    SSL* client = p.client.get();
    SSL* server = p.server.get();
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < kMaxRounds && !(client_done && server_done); ++round) {
        client_done = client_done || finished(client, SSL_do_handshake(client), "client handshake");
        server_done = server_done || finished(server, SSL_do_handshake(server), "server handshake");
    }
    if (!client_done || !server_done) {
        throw Error("handshake did not finish");
    }

    const int length = static_cast<int>(kGreeting.size());
    if (SSL_write(server, kGreeting.data(), length) != length) {
        throw Error("server could not write the greeting");
    }
    std::array<char, 64> buf{};
    std::size_t got = 0;
    for (int round = 0; round < kMaxRounds && got < kGreeting.size(); ++round) {
        const int n = SSL_read(client, buf.data() + got, static_cast<int>(buf.size() - got));
        if (finished(client, n, "client read")) {
            got += static_cast<std::size_t>(n);
        }
    }
    if (std::string_view(buf.data(), got) != kGreeting) {
        throw Error("client did not read the greeting");
    }
    if (finished(server, SSL_read(server, buf.data(), static_cast<int>(buf.size())),
                 "server read")) {
        throw Error("server read data the client never sent");
    }
}

// The first warm-up connection checks that the measured connection is the one claimed.
void check_negotiated(SSL* server) {
    const SSL_CIPHER* cipher = SSL_get_current_cipher(server);
    if (SSL_version(server) != TLS1_3_VERSION || cipher == nullptr ||
        std::string_view(SSL_CIPHER_get_name(cipher)) != kCipherSuite ||
        SSL_get_negotiated_group(server) != NID_X25519) {
        throw Error("negotiated something other than TLS 1.3, X25519, TLS_AES_128_GCM_SHA256");
    }
}

// Each kept session holds one descriptor; use the hard limit and check that it is enough.
void reserve_descriptors(int sessions) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        throw std::runtime_error(std::string("getrlimit: ") + std::strerror(errno));
    }
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &lim);
        (void)::getrlimit(RLIMIT_NOFILE, &lim);
    }
    const rlim_t needed = static_cast<rlim_t>(sessions) + kSpareDescriptors;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < needed) {
        throw std::runtime_error("--sessions " + std::to_string(sessions) + " needs " +
                                 std::to_string(needed) + " open files; the limit is " +
                                 std::to_string(lim.rlim_cur));
    }
}

struct Held {
    UniqueFd fd;
    SslPtr ssl;
};

int run(int sessions, bool counting) {
    reserve_descriptors(sessions);
    const EvpPkeyPtr key = make_key();
    const X509Ptr cert = make_certificate(key.get());
    const SslCtxPtr server_ctx = make_server_context(key.get(), cert.get());
    const SslCtxPtr client_ctx = make_client_context();

    // Warm-up connections, freed, so that one-time global and per-context state is built
    // before the baseline.
    for (int i = 0; i < kWarmups; ++i) {
        Pair p = open_pair(client_ctx.get(), server_ctx.get());
        establish(p);
        if (i == 0) {
            check_negotiated(p.server.get());
        }
    }

    std::vector<Held> held;
    held.reserve(static_cast<std::size_t>(sessions));
    ERR_clear_error();
    const Heap before = heap_now();
    for (int i = 0; i < sessions; ++i) {
        Pair p = open_pair(client_ctx.get(), server_ctx.get());
        establish(p);
        p.client.reset();
        p.client_fd.reset();
        held.push_back({std::move(p.server_fd), std::move(p.server)});
    }
    ERR_clear_error();
    const Heap after = heap_now();

    const double n = sessions;
    std::printf(R"({"sessions":%d,"bytes_per_session":%.1f)", sessions,
                static_cast<double>(after.bytes - before.bytes) / n);
    if (counting) {
        std::printf(R"(,"allocations_per_session":%.2f)",
                    static_cast<double>(after.allocations - before.allocations) / n);
    }
    std::printf("}\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Before anything else: OpenSSL accepts allocator hooks only until its first allocation.
    const bool counting =
        CRYPTO_set_mem_functions(&counting_malloc, &counting_realloc, &counting_free) == 1;
    try {
        CLI::App app{
            "postern-bench-floor: heap OpenSSL alone needs per idle TLS 1.3 server connection "
            "(tests/bench)"};
        int sessions = 2000;
        app.add_option("--sessions", sessions, "server connections to establish and hold")
            ->check(CLI::Range(1, 1'000'000));
        CLI11_PARSE(app, argc, argv);

        if constexpr (kAddressSanitizer) {
            std::fprintf(stderr,
                         "postern-bench-floor: built with AddressSanitizer, whose allocator "
                         "glibc's mallinfo2 does not see; build without it\n");
            return 1;
        }
        return run(sessions, counting);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "postern-bench-floor: %s\n", e.what());
        return 1;
    }
}
