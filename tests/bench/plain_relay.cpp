// postern-bench-relay: the least a mail proxy can do per connection, in plaintext: accept,
// connect to the backend, relay bytes both ways, close both sides when either ends. One
// libevent loop, bufferevents, TCP_NODELAY. scripts/bench drives it with the load generator's
// handshake scenario in plaintext (connect, read the backend's greeting, close) and reads its
// CPU per connection as the TCP half of the benchmark's floor (tests/bench/README.md).
//
//   postern-bench-relay --listen 127.0.0.1:10143 --backend 127.0.0.1:11143
//
// Stops on SIGTERM or SIGINT.

#include "tests/bench/handles.hpp"

#include <CLI/CLI.hpp>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unordered_map>

namespace {

using postern::bench::CFree;
using postern::bench::EventBasePtr;
using postern::bench::EventPtr;
using postern::bench::ListenerPtr;
using BevPtr = std::unique_ptr<bufferevent, CFree<&bufferevent_free>>;

struct Address {
    sockaddr_storage ss{};
    int len = sizeof(sockaddr_storage);
};

bool parse(const std::string& text, Address& a) {
    return evutil_parse_sockaddr_port(text.c_str(), reinterpret_cast<sockaddr*>(&a.ss), &a.len) ==
           0;
}

void no_delay(evutil_socket_t fd) {
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

class Session;

struct Relay {
    EventBasePtr base{event_base_new()};
    Address backend;
    std::unordered_map<Session*, std::unique_ptr<Session>> sessions;
};

// One client and its backend connection. The relay frees it once either side has ended and
// what it still owes the other side is written (or that side is gone too); libevent allows a
// bufferevent to be freed from its own callback.
class Session {
public:
    static void start(Relay& relay, evutil_socket_t fd) {
        auto owned = std::unique_ptr<Session>(new Session(relay));
        Session* s = owned.get();
        relay.sessions.emplace(s, std::move(owned));
        event_base* base = relay.base.get();
        const Address& backend = relay.backend;
        s->client_.reset(bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE));
        s->backend_.reset(bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE));
        if (!s->client_ || !s->backend_ ||
            bufferevent_socket_connect(s->backend_.get(),
                                       reinterpret_cast<const sockaddr*>(&backend.ss),
                                       backend.len) != 0) {
            if (!s->client_) {
                evutil_closesocket(fd);
            }
            s->finish();
            return;
        }
        no_delay(fd);
        no_delay(bufferevent_getfd(s->backend_.get()));
        bufferevent_setcb(s->client_.get(), &read_cb, nullptr, &event_cb, s);
        bufferevent_setcb(s->backend_.get(), &read_cb, nullptr, &event_cb, s);
        bufferevent_enable(s->client_.get(), EV_READ);
        bufferevent_enable(s->backend_.get(), EV_READ);
    }

private:
    explicit Session(Relay& relay) : relay_(relay) {}

    void finish() { relay_.sessions.erase(this); }

    bufferevent* other(bufferevent* bev) const noexcept {
        return bev == client_.get() ? backend_.get() : client_.get();
    }

    static void read_cb(bufferevent* bev, void* arg) noexcept {
        auto* s = static_cast<Session*>(arg);
        (void)evbuffer_add_buffer(bufferevent_get_output(s->other(bev)),
                                  bufferevent_get_input(bev));
    }

    // Either side ended: flush what the other is owed, then close both.
    static void event_cb(bufferevent* bev, short what, void* arg) noexcept {
        auto* s = static_cast<Session*>(arg);
        if ((what & BEV_EVENT_CONNECTED) != 0) {
            return;
        }
        bufferevent* peer = s->other(bev);
        const bool ended_cleanly = (what & BEV_EVENT_EOF) != 0;
        if (!ended_cleanly || evbuffer_get_length(bufferevent_get_output(peer)) == 0) {
            s->finish();
            return;
        }
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        bufferevent_setcb(peer, nullptr, &flushed_cb, &event_after_cb, s);
    }

    static void flushed_cb(bufferevent* /*bev*/, void* arg) noexcept {
        static_cast<Session*>(arg)->finish();
    }

    static void event_after_cb(bufferevent* /*bev*/, short /*what*/, void* arg) noexcept {
        static_cast<Session*>(arg)->finish();
    }

    Relay& relay_;
    BevPtr client_;
    BevPtr backend_;
};

void accept_cb(evconnlistener* /*l*/, evutil_socket_t fd, sockaddr* /*sa*/, int /*len*/,
               void* arg) noexcept {
    auto* relay = static_cast<Relay*>(arg);
    try {
        Session::start(*relay, fd);
    } catch (...) {
        evutil_closesocket(fd);
    }
}

void stop_cb(evutil_socket_t /*sig*/, short /*what*/, void* arg) noexcept {
    event_base_loopbreak(static_cast<event_base*>(arg));
}

int run(const std::string& listen, const std::string& backend) {
    (void)std::signal(SIGPIPE, SIG_IGN);
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &lim);
    }
    Relay relay;
    Address at;
    if (!relay.base || !parse(listen, at) || !parse(backend, relay.backend)) {
        (void)std::fprintf(stderr, "postern-bench-relay: bad address\n");
        return 1;
    }
    const ListenerPtr listener{evconnlistener_new_bind(
        relay.base.get(), &accept_cb, &relay, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
        reinterpret_cast<sockaddr*>(&at.ss), at.len)};
    if (!listener) {
        (void)std::fprintf(stderr, "postern-bench-relay: cannot listen on %s\n", listen.c_str());
        return 1;
    }
    const EventPtr sigterm{evsignal_new(relay.base.get(), SIGTERM, &stop_cb, relay.base.get())};
    const EventPtr sigint{evsignal_new(relay.base.get(), SIGINT, &stop_cb, relay.base.get())};
    (void)event_add(sigterm.get(), nullptr);
    (void)event_add(sigint.get(), nullptr);
    (void)std::puts("ready");
    (void)std::fflush(stdout);
    (void)event_base_dispatch(relay.base.get());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CLI::App app{"postern-bench-relay: minimal plaintext TCP relay, the benchmark's TCP floor"};
        std::string listen;
        std::string backend;
        app.add_option("--listen", listen, "address to accept clients on")->required();
        app.add_option("--backend", backend, "address to relay each client to")->required();
        CLI11_PARSE(app, argc, argv);
        return run(listen, backend);
    } catch (const std::exception& e) {
        (void)std::fprintf(stderr, "postern-bench-relay: %s\n", e.what());
        return 1;
    }
}
