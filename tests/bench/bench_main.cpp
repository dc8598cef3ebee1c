// postern-bench: the benchmark's load generator. One scenario per run, against one address
// (throughput and latency: several, interleaved), speaking IMAP, POP3 or SMTP in
// plaintext, implicit TLS or STARTTLS; prints JSON lines (scenarios.hpp). scripts/bench drives
// it; tests/bench/README.md explains the figures.
//
//   postern-bench handshake  --connect 127.0.0.1:10993 --key ecdsa [--resume]
//   postern-bench throughput --connect 127.0.0.1:10993 --sessions 64 [--also 127.0.0.1:20993]
//   postern-bench latency    --connect 127.0.0.1:10993 [--also 127.0.0.1:11993 --direct ...]
//   postern-bench idle       --connect 127.0.0.1:10993 --sessions 8000 [--login]

#include "tests/bench/scenarios.hpp"
#include "tests/bench/tls_client.hpp"

#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace {

using namespace postern::bench;

struct Common {
    std::string connect;
    std::string protocol = "imap";
    std::string tls = "implicit";
    std::string sni = "mail.bench.test";
    std::string key = "any";
    std::string ciphersuites = "TLS_AES_128_GCM_SHA256";
    std::string groups = "X25519";
    double timeout = 10;
};

void add_common(CLI::App& app, Common& c) {
    app.add_option("--connect", c.connect, "HOST:PORT or [V6]:PORT to connect to")->required();
    app.add_option("--protocol", c.protocol, "imap | pop3 | smtp")
        ->check(CLI::IsMember({"imap", "pop3", "smtp"}));
    app.add_option("--tls", c.tls, "none | implicit | starttls")
        ->check(CLI::IsMember({"none", "implicit", "starttls"}));
    app.add_option("--sni", c.sni, "server name to send (empty: none)");
    app.add_option("--key", c.key,
                   "signature algorithms offered, so a dual-certificate server serves: "
                   "ecdsa | rsa | any")
        ->check(CLI::IsMember({"any", "ecdsa", "rsa"}));
    app.add_option("--ciphersuites", c.ciphersuites, "TLS 1.3 suites offered");
    app.add_option("--groups", c.groups, "key exchange groups offered");
    app.add_option("--timeout", c.timeout, "seconds a step or request may take")
        ->check(CLI::PositiveNumber);
}

KeyPreference key_preference(const std::string& key) {
    if (key == "ecdsa") {
        return KeyPreference::Ecdsa;
    }
    return key == "rsa" ? KeyPreference::Rsa : KeyPreference::Any;
}

// Fills t.address from HOST:PORT or [V6]:PORT; `option` names the flag in errors.
bool parse_address(const std::string& text, const char* option, Target& t, std::string& error) {
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string::npos) {
            error = std::string(option) + ": expected [V6]:PORT";
            return false;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) {
            error = std::string(option) + ": expected HOST:PORT";
            return false;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    std::uint16_t p = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc{} || end != port.data() + port.size() || p == 0) {
        error = std::string(option) + ": bad port " + port;
        return false;
    }
    t.address = {};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&t.address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&t.address);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(p);
        t.address_length = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(p);
        t.address_length = sizeof(sockaddr_in6);
    } else {
        error = std::string(option) + ": not an IP address: " + host;
        return false;
    }
    t.name = text;
    return true;
}

std::optional<Target> make_target(const Common& c, std::string& error) {
    Target t;
    t.protocol = c.protocol == "pop3"   ? Protocol::Pop3
                 : c.protocol == "smtp" ? Protocol::Smtp
                                        : Protocol::Imap;
    t.tls = c.tls == "none"       ? TlsMode::None
            : c.tls == "starttls" ? TlsMode::StartTls
                                  : TlsMode::Implicit;
    t.sni = c.sni;
    if (!parse_address(c.connect, "--connect", t, error)) {
        return std::nullopt;
    }
    return t;
}

// --connect, then each --also (same protocol and TLS), then --direct (the backend, plaintext).
std::optional<std::vector<Target>> target_list(const Target& first,
                                               const std::vector<std::string>& also,
                                               const std::string& direct, std::string& error) {
    std::vector<Target> targets{first};
    for (const std::string& address : also) {
        Target t = first;
        if (!parse_address(address, "--also", t, error)) {
            return std::nullopt;
        }
        targets.push_back(t);
    }
    if (!direct.empty()) {
        Target t = first;
        t.tls = TlsMode::None;
        t.tls_context = nullptr;
        if (!parse_address(direct, "--direct", t, error)) {
            return std::nullopt;
        }
        targets.push_back(t);
    }
    return targets;
}

// Thousands of sessions need thousands of descriptors: use the hard limit.
void raise_open_files() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

int run(int argc, char** argv) {
    CLI::App app{"postern-bench: load generator for the postern benchmark (tests/bench)"};
    app.require_subcommand(1);

    Common common;
    HandshakeOptions hs;
    ThroughputOptions tp;
    LatencyOptions lat;
    IdleOptions idle;
    bool login = false;

    auto* handshake = app.add_subcommand("handshake", "new connections per second");
    add_common(*handshake, common);
    handshake->add_option("--concurrency", hs.concurrency, "connections in flight");
    handshake->add_option("--count", hs.count, "stop after this many connections");
    handshake->add_option("--duration", hs.seconds,
                          "stop starting new ones after this (s), per target");
    handshake->add_flag("--resume", hs.resume, "resume with the newest session ticket");
    std::vector<std::string> also;
    handshake->add_option("--also", also,
                          "another proxy, same protocol and TLS: loaded in turn with --connect, "
                          "a slice at a time (repeatable)");
    handshake->add_option("--slice", hs.slice, "with --also: how long each is loaded at a time (s)")
        ->check(CLI::PositiveNumber);

    auto* throughput = app.add_subcommand("throughput", "bulk MB/s through logged-in sessions");
    add_common(*throughput, common);
    throughput->add_option("--sessions", tp.sessions, "sessions in parallel");
    throughput->add_option("--chunk", tp.chunk, "payload bytes per request");
    throughput->add_option("--depth", tp.depth, "requests in flight per session");
    throughput->add_option("--duration", tp.seconds, "stop asking after this (s), per target");
    throughput->add_option("--max-bytes", tp.max_bytes, "stop asking after this much payload");
    throughput->add_option("--also", also,
                           "another proxy, same protocol and TLS: loaded in turn with --connect, "
                           "a slice at a time (repeatable)");
    throughput
        ->add_option("--slice", tp.slice, "with --also: how long each is loaded at a time (s)")
        ->check(CLI::PositiveNumber);

    auto* latency = app.add_subcommand("latency", "NOOP round trips through logged-in sessions");
    add_common(*latency, common);
    latency->add_option("--sessions", lat.sessions, "sessions, each with one NOOP in flight");
    latency->add_option("--count", lat.count, "round trips measured");
    latency->add_option("--warmup", lat.warmup, "round trips first, not measured");
    latency->add_option("--duration", lat.seconds, "stop after this (s)");
    std::string direct;
    latency->add_option("--also", also,
                        "another proxy, same protocol and TLS: measured interleaved with "
                        "--connect (repeatable)");
    latency->add_option("--direct", direct,
                        "the backend itself, in plaintext: measured interleaved as well");

    auto* idler = app.add_subcommand("idle", "open sessions, then hold them silent");
    add_common(*idler, common);
    idler->add_option("--sessions", idle.sessions, "sessions to open");
    idler->add_option("--concurrency", idle.concurrency, "sessions being opened at once");
    idler->add_option("--hold", idle.hold_seconds, "hold at most this long (s); stdin EOF ends it");
    idler->add_flag("--login", login, "log in before going silent");

    CLI11_PARSE(app, argc, argv);

    (void)std::signal(SIGPIPE, SIG_IGN);
    raise_open_files();
    Conn::set_timeout(std::chrono::milliseconds(static_cast<long>(common.timeout * 1000)));

    std::string error;
    auto target = make_target(common, error);
    if (!target) {
        (void)std::fprintf(stderr, "postern-bench: %s\n", error.c_str());
        return 1;
    }
    const bool needs_login =
        throughput->parsed() || latency->parsed() || (idler->parsed() && login);
    target->login = needs_login;

    auto targets = target_list(*target, also, direct, error);
    if (!targets) {
        (void)std::fprintf(stderr, "postern-bench: %s\n", error.c_str());
        return 1;
    }
    // One client context per target, each with its own ticket store: a ticket resumes only on
    // the proxy that issued it.
    const bool resume = handshake->parsed() && hs.resume;
    std::vector<std::unique_ptr<SessionStore>> stores;
    std::vector<SslCtxPtr> contexts;
    std::vector<SessionStore*> store_of;
    for (Target& t : *targets) {
        stores.push_back(std::make_unique<SessionStore>());
        store_of.push_back(resume ? stores.back().get() : nullptr);
        if (t.tls == TlsMode::None) {
            continue;
        }
        ClientTlsOptions tls;
        tls.key = key_preference(common.key);
        tls.ciphersuites = common.ciphersuites;
        tls.groups = common.groups;
        tls.release_buffers = idler->parsed();
        contexts.push_back(make_client_context(tls, store_of.back(), error));
        if (!contexts.back()) {
            (void)std::fprintf(stderr, "postern-bench: TLS client context: %s\n", error.c_str());
            return 1;
        }
        t.tls_context = contexts.back().get();
    }

    if (handshake->parsed()) {
        return run_handshake(*targets, store_of, hs);
    }
    if (throughput->parsed()) {
        return run_throughput(*targets, tp);
    }
    if (latency->parsed()) {
        return run_latency(*targets, lat);
    }
    return run_idle(targets->front(), idle);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        (void)std::fprintf(stderr, "postern-bench: %s\n", e.what());
    } catch (...) {
        (void)std::fprintf(stderr, "postern-bench: unknown error\n");
    }
    return 1;
}
