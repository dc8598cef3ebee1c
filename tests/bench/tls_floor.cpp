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
// With --handshakes N it measures CPU per server connection instead (tls_floor_cpu.cpp).
//
// Prints one JSON line: {"sessions":N,"bytes_per_session":B,"allocations_per_session":A}.
// allocations_per_session counts OpenSSL's live allocations (CRYPTO_set_mem_functions); it is
// left out if OpenSSL had allocated before the counting hooks could be installed.

#include "tests/bench/handles.hpp"
#include "tests/bench/tls_floor_common.hpp"
#include "tests/bench/tls_floor_cpu.hpp"

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
using namespace postern::bench::tls_floor;

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

constexpr int kWarmups = 2;  // connections made and freed before the baseline
constexpr rlim_t kSpareDescriptors = 16;

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

// ---------------------------------------------------------------- one connection

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
    const EvpPkeyPtr key = make_key(KeyType::Ecdsa);
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
    try {
        CLI::App app{
            "postern-bench-floor: heap OpenSSL alone needs per idle TLS 1.3 server connection, "
            "or (--handshakes) its server CPU per connection (tests/bench)"};
        int sessions = 2000;
        int handshakes = 0;
        app.add_option("--sessions", sessions, "server connections to establish and hold")
            ->check(CLI::Range(1, 1'000'000));
        app.add_option("--handshakes", handshakes,
                       "instead: server CPU per connection over this many full and resumed "
                       "handshakes per key type (tls_floor_cpu.cpp)")
            ->check(CLI::Range(1, 1'000'000));
        CLI11_PARSE(app, argc, argv);
        if (handshakes > 0) {
            return run_cpu(handshakes);
        }

        // Before OpenSSL's first allocation, which CLI11 does not make: OpenSSL accepts
        // allocator hooks only until then. The CPU mode runs without them.
        const bool counting =
            CRYPTO_set_mem_functions(&counting_malloc, &counting_realloc, &counting_free) == 1;
        if constexpr (kAddressSanitizer) {
            (void)std::fprintf(stderr,
                               "postern-bench-floor: built with AddressSanitizer, whose allocator "
                               "glibc's mallinfo2 does not see; build without it\n");
            return 1;
        }
        return run(sessions, counting);
    } catch (const std::exception& e) {
        (void)std::fprintf(stderr, "postern-bench-floor: %s\n", e.what());
        return 1;
    }
}
