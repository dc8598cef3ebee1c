// postern-bench-floor --handshakes N: the CPU OpenSSL alone costs a TLS 1.3 server per
// connection, with no kernel TCP: the TLS half of the benchmark's floor (tests/bench/README.md).
//
// For each key type (ECDSA P-256, RSA-2048: a key and self-signed certificate made in memory,
// a server context set up as postern's) it runs N full handshakes, then N resumed ones (the
// client offers the newest session ticket), over non-blocking socketpairs in this one thread.
// The client offers what the load generator offers (X25519, TLS_AES_128_GCM_SHA256). The
// client and the server take turns in one thread, so the server's CPU is its thread CPU time
// (CLOCK_THREAD_CPUTIME_ID) summed over its own calls only: SSL_new, the SSL_do_handshake
// steps (tickets included), writing an IMAP greeting, reading the client's close_notify,
// SSL_shutdown and SSL_free: what any TLS proxy must spend on OpenSSL per connection. The
// SSL_do_handshake steps alone are reported as well. Socketpair writes and reads are in both;
// a proxy's event loop, accept, backend connection and TCP are not.
//
// Prints one JSON line: {"handshakes":N,"ecdsa_us":..,"ecdsa_handshake_us":..,"rsa_us":..,
// "rsa_handshake_us":..,"resumed_us":..,"resumed_handshake_us":..,"resumed_pct":..}
// (µs of server CPU per connection; resumed: ECDSA certificate, tickets).

#include "tests/bench/tls_floor_cpu.hpp"

#include "tests/bench/tls_floor_common.hpp"

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string_view>

namespace postern::bench::tls_floor {

namespace {

using SslSessionPtr = postern::bench::SslSessionPtr;

std::int64_t thread_ns() {
    timespec ts{};
    (void)::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000) + ts.tv_nsec;
}

// Server CPU, summed over the server's calls.
struct Cost {
    std::int64_t connection_ns = 0;
    std::int64_t handshake_ns = 0;
};

// Runs `step` on the server's clock.
template <class F>
auto timed(std::int64_t& total, F&& step) {
    const std::int64_t t0 = thread_ns();
    auto result = step();
    total += thread_ns() - t0;
    return result;
}

// One connection, start to end. Returns whether it resumed; fills `ticket` with the client's
// newest session.
bool one_connection(SSL_CTX* client_ctx, SSL_CTX* server_ctx, SslSessionPtr& ticket, Cost& cost,
                    bool check) {
    Pair p = open_pair(client_ctx, nullptr);
    SSL* client = p.client.get();
    if (ticket && SSL_set_session(client, ticket.get()) != 1) {
        throw Error("SSL_set_session");
    }
    SslPtr owned{timed(cost.connection_ns, [&] {
        SSL* s = SSL_new(server_ctx);
        if (s != nullptr && SSL_set_fd(s, p.server_fd.get()) == 1) {
            SSL_set_accept_state(s);
        }
        return s;
    })};
    SSL* server = owned.get();
    if (server == nullptr) {
        throw Error("SSL_new (server)");
    }

    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < kMaxRounds && !(client_done && server_done); ++round) {
        client_done = client_done || finished(client, SSL_do_handshake(client), "client handshake");
        if (!server_done) {
            std::int64_t step = 0;
            server_done = timed(step, [&] {
                return finished(server, SSL_do_handshake(server), "server handshake");
            });
            cost.handshake_ns += step;
            cost.connection_ns += step;
        }
    }
    if (!client_done || !server_done) {
        throw Error("handshake did not finish");
    }
    if (check) {
        check_negotiated(server);
    }
    const bool resumed = SSL_session_reused(server) == 1;

    const int length = static_cast<int>(kGreeting.size());
    if (timed(cost.connection_ns, [&] { return SSL_write(server, kGreeting.data(), length); }) !=
        length) {
        throw Error("server could not write the greeting");
    }
    // The client reads the greeting (and the ticket before it), then closes.
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
    ticket.reset(SSL_get1_session(client));
    (void)SSL_shutdown(client);

    // The server reads the close_notify, answers it and frees the connection.
    timed(cost.connection_ns, [&] {
        const int n = SSL_read(server, buf.data(), static_cast<int>(buf.size()));
        if (n <= 0 && SSL_get_error(server, n) == SSL_ERROR_ZERO_RETURN) {
            (void)SSL_shutdown(server);
        }
        owned.reset();
        return 0;
    });
    return resumed;
}

struct Figures {
    double us = 0;
    double handshake_us = 0;
    int resumed = 0;
};

Figures measure(SSL_CTX* client_ctx, SSL_CTX* server_ctx, int handshakes, bool resume) {
    SslSessionPtr ticket;
    Cost warm;
    // Warm-up: one-time state built, and the first ticket for the resumed run.
    (void)one_connection(client_ctx, server_ctx, ticket, warm, true);
    (void)one_connection(client_ctx, server_ctx, ticket, warm, false);
    Cost cost;
    Figures f;
    for (int i = 0; i < handshakes; ++i) {
        if (!resume) {
            ticket.reset();
        }
        f.resumed += one_connection(client_ctx, server_ctx, ticket, cost, false) ? 1 : 0;
    }
    const double n = handshakes;
    f.us = static_cast<double>(cost.connection_ns) / 1e3 / n;
    f.handshake_us = static_cast<double>(cost.handshake_ns) / 1e3 / n;
    return f;
}

}  // namespace

int run_cpu(int handshakes) {
    std::array<Figures, 3> figures{};  // ECDSA full, RSA full, ECDSA resumed
    for (const KeyType type : {KeyType::Ecdsa, KeyType::Rsa}) {
        const EvpPkeyPtr key = make_key(type);
        const X509Ptr cert = make_certificate(key.get());
        const SslCtxPtr server_ctx = make_server_context(key.get(), cert.get());
        const SslCtxPtr client_ctx = make_client_context(true);
        if (type == KeyType::Ecdsa) {
            figures[0] = measure(client_ctx.get(), server_ctx.get(), handshakes, false);
            figures[2] = measure(client_ctx.get(), server_ctx.get(), handshakes, true);
        } else {
            figures[1] = measure(client_ctx.get(), server_ctx.get(), handshakes, false);
        }
    }
    if (figures[0].resumed != 0 || figures[1].resumed != 0) {
        throw Error("a full handshake resumed");
    }
    std::printf(R"({"handshakes":%d,"ecdsa_us":%.1f,"ecdsa_handshake_us":%.1f,)"
                R"("rsa_us":%.1f,"rsa_handshake_us":%.1f,"resumed_us":%.1f,)"
                R"("resumed_handshake_us":%.1f,"resumed_pct":%.1f})"
                "\n",
                handshakes, figures[0].us, figures[0].handshake_us, figures[1].us,
                figures[1].handshake_us, figures[2].us, figures[2].handshake_us,
                100.0 * figures[2].resumed / handshakes);
    return 0;
}

}  // namespace postern::bench::tls_floor
