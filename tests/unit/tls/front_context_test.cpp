// FrontContext on real in-memory handshakes (BIO pairs) against a built CertStore: which
// sessions resume under which server name (RFC 6066 §3), TLS 1.3 tickets, TLS 1.2 tickets and
// TLS 1.2 session ids, with the process's shared ticket keys; and ALPN (RFC 7301) checked
// against the listener's protocol after the switch to the certificate's context.
#include "tls/front_context.hpp"

#include "cert_factory.hpp"
#include "tls/ossl.hpp"

#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

using postern::protocols::Protocol;
using postern::tls::CertStore;
using postern::tls::CFree;
using postern::tls::FrontContext;
using postern::tls::Handshake;
using postern::tls::SslCtxPtr;
using postern::tls::SslPtr;
using postern::tls::TicketKeys;
using postern::tls::testing::base_config;
using postern::tls::testing::make_key;
using postern::tls::testing::TempDir;
using postern::tls::testing::write_cert;

namespace {

using SessionPtr = std::unique_ptr<SSL_SESSION, CFree<&SSL_SESSION_free>>;

// Three certificates: the default, mail.a.test (also imap.a.test) and mail.b.test.
struct Certs {
    TempDir dir;
    postern::conf::Config config = base_config(dir);
    std::shared_ptr<const CertStore> store;

    Certs() {
        auto key = make_key(false);
        config.certificates.push_back(
            write_cert(dir.path(), "default", {"mail.default.test"}, key.get(), 30, 1));
        config.certificates.push_back(
            write_cert(dir.path(), "a", {"mail.a.test", "imap.a.test"}, key.get(), 30, 2));
        config.certificates.push_back(
            write_cert(dir.path(), "b", {"mail.b.test"}, key.get(), 30, 3));
        store = build();
    }

    // A new store from the same files, as a reload builds it.
    [[nodiscard]] std::shared_ptr<const CertStore> build() const {
        auto built = CertStore::build(config);
        REQUIRE(built.errors.empty());
        return built.store;
    }
};

struct Listener {
    std::unique_ptr<FrontContext> front;

    explicit Listener(const std::shared_ptr<TicketKeys>& keys, Protocol protocol = Protocol::Imap) {
        std::string error;
        front = FrontContext::create(postern::conf::TlsSettings{}, protocol, keys, error);
        REQUIRE_MESSAGE(front, error);
    }
};

struct Dial {
    std::string sni;
    int max_version = TLS1_3_VERSION;
    bool no_ticket = false;        // TLS 1.2 session-id resumption only
    SSL_SESSION* offer = nullptr;  // the session to resume
    std::string alpn{};            // the client's ALPN list in wire form; empty: no extension
};

struct Outcome {
    bool completed = false;  // both sides finished the handshake
    bool reused = false;
    std::string served;    // the file stem of the certificate the client holds: "a", "b", ...
    std::string logged;    // what the session log names: Handshake::cert's primary name
    std::string alpn;      // negotiated, as the client sees it
    std::string refusal;   // Handshake::refusal
    int client_error = 0;  // the client's OpenSSL reason when the handshake failed
    SessionPtr session;
};

enum class Step { Done, Again, Failed };

Step step(SSL* ssl) {
    const int ret = SSL_do_handshake(ssl);
    if (ret == 1) {
        return Step::Done;
    }
    const int err = SSL_get_error(ssl, ret);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? Step::Again : Step::Failed;
}

// The certificate file stem whose leaf the client was shown (or holds from its session).
std::string served_stem(const CertStore& store, SSL* client) {
    const X509* peer = SSL_get0_peer_certificate(client);
    for (const auto& cert : store.certificates()) {
        if (peer != nullptr && X509_cmp(peer, cert->data.leaf.get()) == 0) {
            return cert->data.cert_file.stem().string();
        }
    }
    return "-";
}

// Runs both sides until both are done or one fails; a failing server's alert still reaches
// the client, whose reason is kept.
Outcome run_handshake(SSL* client, SSL* server) {
    Outcome out;
    bool client_done = false;
    bool server_done = false;
    bool server_failed = false;
    ERR_clear_error();
    for (int round = 0; round < 10 && !(client_done && server_done); ++round) {
        const Step c = client_done ? Step::Done : step(client);
        if (c == Step::Failed) {
            out.client_error = ERR_GET_REASON(ERR_peek_last_error());
            ERR_clear_error();
            return out;
        }
        client_done = c == Step::Done;
        if (!server_failed && !server_done) {
            const Step srv = step(server);
            server_failed = srv == Step::Failed;
            server_done = srv == Step::Done;
            ERR_clear_error();  // the server's reason is its own; the client's is checked
        }
    }
    out.completed = client_done && server_done;
    return out;
}

Outcome dial(const std::shared_ptr<const CertStore>& store, const Listener& listener,
             const Dial& how) {
    SslCtxPtr client_ctx{SSL_CTX_new(TLS_client_method())};
    REQUIRE(client_ctx);
    REQUIRE(SSL_CTX_set_max_proto_version(client_ctx.get(), how.max_version) == 1);
    if (how.no_ticket) {
        SSL_CTX_set_options(client_ctx.get(), SSL_OP_NO_TICKET);
    }
    SslPtr client{SSL_new(client_ctx.get())};
    Handshake hs;
    hs.store = store;
    SslPtr server = listener.front->new_ssl(hs);
    REQUIRE(client);
    REQUIRE(server);
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is the call it makes.
    REQUIRE(SSL_ctrl(client.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(how.sni.c_str())) == 1);
    if (how.offer != nullptr) {
        REQUIRE(SSL_set_session(client.get(), how.offer) == 1);
    }
    if (!how.alpn.empty()) {
        REQUIRE(SSL_set_alpn_protos(client.get(),
                                    reinterpret_cast<const unsigned char*>(how.alpn.data()),
                                    static_cast<unsigned>(how.alpn.size())) == 0);
    }
    BIO* client_end = nullptr;
    BIO* server_end = nullptr;
    REQUIRE(BIO_new_bio_pair(&client_end, 0, &server_end, 0) == 1);
    SSL_set_bio(client.get(), client_end, client_end);  // each SSL owns its end
    SSL_set_bio(server.get(), server_end, server_end);
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(server.get());
    Outcome out = run_handshake(client.get(), server.get());
    out.refusal = hs.refusal;
    out.logged = hs.cert != nullptr ? hs.cert->primary_name() : "-";
    if (!out.completed) {
        return out;
    }
    // TLS 1.3 tickets follow the handshake; a read that finds no data processes them.
    unsigned char byte = 0;
    CHECK(SSL_read(client.get(), &byte, 1) <= 0);
    out.reused = SSL_session_reused(server.get()) == 1;
    CHECK((SSL_session_reused(client.get()) == 1) == out.reused);
    out.served = served_stem(*store, client.get());
    const unsigned char* selected = nullptr;
    unsigned selected_len = 0;
    SSL_get0_alpn_selected(client.get(), &selected, &selected_len);
    out.alpn.assign(reinterpret_cast<const char*>(selected), selected_len);
    out.session.reset(SSL_get1_session(client.get()));
    REQUIRE(out.session);
    SSL_shutdown(client.get());  // without a close_notify the session is not resumable
    SSL_shutdown(server.get());
    return out;
}

// Dials that must complete.
Outcome connect(const std::shared_ptr<const CertStore>& store, const Listener& listener,
                const Dial& how) {
    Outcome out = dial(store, listener, how);
    REQUIRE_MESSAGE(out.completed, "handshake failed: ", out.client_error, " ", out.refusal);
    return out;
}

struct Version {
    const char* name;
    int max_version;
    bool no_ticket;
};
constexpr std::array<Version, 3> kVersions{{
    {"TLS 1.3 ticket", TLS1_3_VERSION, false},
    {"TLS 1.2 ticket", TLS1_2_VERSION, false},
    {"TLS 1.2 session id", TLS1_2_VERSION, true},
}};

}  // namespace

TEST_CASE("front_context: a session resumes under its own name, never under another's") {
    const Certs certs;
    const Listener listener{std::make_shared<TicketKeys>()};
    for (const Version& v : kVersions) {
        CAPTURE(v.name);
        const Dial first_dial{
            .sni = "mail.a.test", .max_version = v.max_version, .no_ticket = v.no_ticket};
        const Outcome first = connect(certs.store, listener, first_dial);
        REQUIRE_FALSE(first.reused);
        CHECK(first.served == "a");

        Dial same = first_dial;
        same.offer = first.session.get();
        const Outcome again = connect(certs.store, listener, same);
        CHECK(again.reused);
        CHECK(again.served == "a");

        // RFC 6066 §3: mail.b.test is served by another certificate; a's session must not
        // resume there (the client would hold a's session while the log says b).
        Dial other = same;
        other.sni = "mail.b.test";
        const Outcome cross = connect(certs.store, listener, other);
        CHECK_FALSE(cross.reused);
        CHECK(cross.served == "b");
        CHECK(cross.logged == "mail.b.test");

        // No name (the default certificate) is another certificate too.
        other.sni = "unknown.test";
        const Outcome fallback = connect(certs.store, listener, other);
        CHECK_FALSE(fallback.reused);
        CHECK(fallback.served == "default");

        // A name the same certificate covers is the same server: resuming is fine.
        other.sni = "imap.a.test";
        const Outcome sibling = connect(certs.store, listener, other);
        CHECK(sibling.reused);
        CHECK(sibling.served == "a");
        CHECK(sibling.logged == "mail.a.test");
    }
}

TEST_CASE("front_context: sessions resume on another listener sharing the keys, same name only") {
    // Ticket keys are per process (every listener, every worker); the session cache of TLS 1.2
    // ids is per front context, so only tickets are checked across listeners.
    const Certs certs;
    const auto keys = std::make_shared<TicketKeys>();
    const Listener one{keys};
    const Listener two{keys};
    for (const Version& v : kVersions) {
        if (v.no_ticket) {
            continue;
        }
        CAPTURE(v.name);
        const Dial first_dial{.sni = "mail.b.test", .max_version = v.max_version};
        const Outcome first = connect(certs.store, one, first_dial);
        Dial same = first_dial;
        same.offer = first.session.get();
        CHECK(connect(certs.store, two, same).reused);
        Dial other = same;
        other.sni = "mail.a.test";
        const Outcome cross = connect(certs.store, two, other);
        CHECK_FALSE(cross.reused);
        CHECK(cross.served == "a");
    }
}

TEST_CASE("front_context: a reloaded store keeps sessions of an unchanged certificate") {
    // Each leaf is its own session context, so a store rebuilt from the same files (SIGHUP, a
    // renewal of another name) resumes the sessions of the certificates it kept.
    const Certs certs;
    const Listener listener{std::make_shared<TicketKeys>()};
    const Outcome first = connect(certs.store, listener, {.sni = "mail.a.test"});
    const auto reloaded = certs.build();
    const Outcome again =
        connect(reloaded, listener, {.sni = "mail.a.test", .offer = first.session.get()});
    CHECK(again.reused);
    CHECK(again.served == "a");
}

// --- ALPN (RFC 7301; ALPACA) --------------------------------------------------------------

namespace {

// An ALPN list in wire form from names: {"h2", "imap"} -> "\x02h2\x04imap".
std::string wire(std::initializer_list<std::string_view> names) {
    std::string out;
    for (std::string_view name : names) {
        out += static_cast<char>(name.size());
        out += name;
    }
    return out;
}

}  // namespace

TEST_CASE("front_context: ALPN selects the listener's protocol, refuses a list without it") {
    const Certs certs;
    const auto keys = std::make_shared<TicketKeys>();
    struct Row {
        Protocol protocol;
        const char* id;
        const char* other;  // another mail protocol's id: cross-protocol, refused too
    };
    for (const Row& row : {Row{Protocol::Imap, "imap", "pop3"}, Row{Protocol::Pop3, "pop3", "imap"},
                           Row{Protocol::Smtp, "smtp", "imap"}}) {
        for (const int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
            CAPTURE(row.id);
            CAPTURE(version);
            const Listener listener{keys, row.protocol};
            Dial how{.sni = "mail.b.test", .max_version = version};

            // No ALPN: served, nothing negotiated (most mail clients send none).
            Outcome out = connect(certs.store, listener, how);
            CHECK(out.alpn.empty());
            CHECK(out.served == "b");

            how.alpn = wire({row.id});
            out = connect(certs.store, listener, how);
            CHECK(out.alpn == row.id);
            CHECK(out.refusal.empty());

            how.alpn = wire({"h2", "http/1.1", row.id});
            CHECK(connect(certs.store, listener, how).alpn == row.id);

            // ALPACA: an HTTPS client steered to a mail port, or another mail protocol's.
            for (const std::string& list : {wire({"http/1.1"}), wire({"h2", "http/1.1"}),
                                            wire({row.other}), wire({"IMAP", "imap "})}) {
                how.alpn = list;
                out = dial(certs.store, listener, how);
                CHECK_FALSE(out.completed);
                CHECK(out.client_error == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL);
                CHECK(out.refusal.find(std::string("ALPN: ") + row.id + " not offered") == 0);
            }
            how.alpn = wire({"h2", "http/1.1"});
            CHECK(dial(certs.store, listener, how).refusal ==
                  std::string("ALPN: ") + row.id + " not offered (client offered: h2,http/1.1)");
        }
    }
}

TEST_CASE("front_context: ALPN is checked on resumption too") {
    const Certs certs;
    const Listener listener{std::make_shared<TicketKeys>()};
    for (const Version& v : kVersions) {
        CAPTURE(v.name);
        Dial how{.sni = "mail.a.test",
                 .max_version = v.max_version,
                 .no_ticket = v.no_ticket,
                 .alpn = wire({"imap"})};
        const Outcome first = connect(certs.store, listener, how);
        how.offer = first.session.get();
        const Outcome again = connect(certs.store, listener, how);
        CHECK(again.reused);
        CHECK(again.alpn == "imap");
        how.alpn = wire({"http/1.1"});
        const Outcome refused = dial(certs.store, listener, how);
        CHECK_FALSE(refused.completed);
        CHECK(refused.client_error == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL);
    }
}
