// postern-bench-backend: the benchmark's plaintext mail server. It greets in IMAP, POP3 or SMTP,
// accepts any login, answers NOOP, and sends N bytes on request, so that every proxy in the
// benchmark relays the same bytes from the same server and the server costs next to nothing.
//
//   IMAP  a LOGIN u p -> a OK          (also with synchronizing literals, as nginx sends them)
//         a NOOP      -> a OK
//         a XBULK n   -> * 1 FETCH (BODY[] {n}\r\n<n bytes>)\r\n a OK   (RFC 9051 §4.3 literal)
//   POP3  USER/PASS/NOOP -> +OK; XBULK n -> +OK, then n bytes (rounded up to whole 80-byte
//         lines), then "."                                           (RFC 1939 §3 multi-line)
//   SMTP  EHLO/AUTH/MAIL/RCPT/NOOP/RSET -> 2xx; DATA is read and accepted
//
// Bulk payload is added to the output by reference from one static block (no copies) and topped
// up as the socket drains, so a 1 GB reply costs no memory. Prints "ready" once listening; stops
// on SIGTERM or SIGINT. This file holds the server and each session's I/O; backend_replies.cpp the
// replies to each command.
//
//   postern-bench-backend --imap 127.0.0.1:11143 --pop3 127.0.0.1:11110 --smtp 127.0.0.1:11025

#include "tests/bench/backend_session.hpp"
#include "tests/bench/handles.hpp"

#include <CLI/CLI.hpp>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <unordered_map>
#include <vector>

namespace postern::bench::backend {
namespace {

constexpr std::size_t kBlockLines = 13'107;
constexpr std::size_t kBlockBytes = kLineBytes * kBlockLines;  // just under 1 MiB
constexpr std::size_t kOutputHigh = 1 << 20;                   // top the output up to this much
constexpr std::size_t kOutputLow = std::size_t{256} * 1024;
constexpr std::size_t kMaxCommand = std::size_t{64} * 1024;

// The payload: whole lines, so the same block serves IMAP literals and POP3 bodies.
const char* payload_block() {
    static const std::string block = [] {
        std::string line(kLineBytes - 2, 'x');
        line += "\r\n";
        std::string b;
        b.reserve(kBlockBytes);
        for (std::size_t i = 0; i < kBlockLines; ++i) {
            b += line;
        }
        return b;
    }();
    return block.data();
}

}  // namespace

class Server {
public:
    Server() : base_(event_base_new()) {}

    bool listen(Protocol protocol, const std::string& address) {
        sockaddr_storage ss{};
        int len = sizeof(ss);
        if (evutil_parse_sockaddr_port(address.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) !=
            0) {
            (void)std::fprintf(stderr, "postern-bench-backend: bad address %s\n", address.c_str());
            return false;
        }
        slots_.push_back(std::make_unique<Slot>(Slot{this, protocol}));
        ListenerPtr l{evconnlistener_new_bind(base_.get(), &accept_cb, slots_.back().get(),
                                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
                                              reinterpret_cast<sockaddr*>(&ss), len)};
        if (!l) {
            (void)std::fprintf(stderr, "postern-bench-backend: cannot listen on %s\n",
                               address.c_str());
            return false;
        }
        listeners_.push_back(std::move(l));
        return true;
    }

    int run() {
        sigterm_.reset(evsignal_new(base_.get(), SIGTERM, &stop_cb, base_.get()));
        sigint_.reset(evsignal_new(base_.get(), SIGINT, &stop_cb, base_.get()));
        event_add(sigterm_.get(), nullptr);
        event_add(sigint_.get(), nullptr);
        reaper_.reset(event_new(base_.get(), -1, EV_PERSIST, &reap_cb, this));
        const timeval every{0, 200'000};
        event_add(reaper_.get(), &every);
        std::puts("ready");
        (void)std::fflush(stdout);
        event_base_dispatch(base_.get());
        return 0;
    }

    // Retires a session; it is freed from the reaper, never inside its own callback.
    void retire(Session* s) {
        const auto it = sessions_.find(s);
        if (it != sessions_.end()) {
            graveyard_.push_back(std::move(it->second));
            sessions_.erase(it);
        }
    }

private:
    struct Slot {
        Server* server;
        Protocol protocol;
    };
    static void accept_cb(evconnlistener* /*l*/, evutil_socket_t fd, sockaddr* /*sa*/, int /*len*/,
                          void* arg) noexcept {
        auto* slot = static_cast<Slot*>(arg);
        try {
            slot->server->accept(slot->protocol, fd);
        } catch (...) {
            evutil_closesocket(fd);
        }
    }

    void accept(Protocol protocol, evutil_socket_t fd) {
        BevPtr bev{bufferevent_socket_new(base_.get(), fd, BEV_OPT_CLOSE_ON_FREE)};
        if (!bev) {
            evutil_closesocket(fd);
            return;
        }
        evutil_make_socket_nonblocking(fd);
        const int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        auto session = std::make_unique<Session>(*this, protocol, std::move(bev));
        Session* raw = session.get();
        sessions_.emplace(raw, std::move(session));
        raw->start();
    }

    static void stop_cb(evutil_socket_t /*fd*/, short /*what*/, void* base) noexcept {
        event_base_loopbreak(static_cast<event_base*>(base));
    }

    static void reap_cb(evutil_socket_t /*fd*/, short /*what*/, void* self) noexcept {
        static_cast<Server*>(self)->graveyard_.clear();
    }

    EventBasePtr base_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::vector<ListenerPtr> listeners_;
    std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
    std::vector<std::unique_ptr<Session>> graveyard_;
    EventPtr sigterm_;
    EventPtr sigint_;
    EventPtr reaper_;
};

namespace {

template <void (Session::*Method)()>
void data_cb(bufferevent* /*bev*/, void* self) noexcept {
    try {
        (static_cast<Session*>(self)->*Method)();
    } catch (...) {
        static_cast<Session*>(self)->on_event(BEV_EVENT_ERROR);
    }
}

void event_cb(bufferevent* /*bev*/, short what, void* self) noexcept {
    static_cast<Session*>(self)->on_event(what);
}

}  // namespace

Session::Session(Server& server, Protocol protocol, BevPtr bev)
    : server_(server), protocol_(protocol), bev_(std::move(bev)) {}

void Session::start() {
    bufferevent_setcb(bev_.get(), &data_cb<&Session::on_read>, &data_cb<&Session::on_write>,
                      &event_cb, this);
    bufferevent_setwatermark(bev_.get(), EV_WRITE, kOutputLow, 0);
    // libevent writes at most 16 KiB per wakeup by default; bulk replies want big writes.
    (void)bufferevent_set_max_single_write(bev_.get(), kOutputHigh);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
    switch (protocol_) {
        case Protocol::Imap:
            say("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE AUTH=PLAIN] "
                "postern-bench backend ready\r\n");
            break;
        case Protocol::Pop3:
            say("+OK postern-bench backend ready\r\n");
            break;
        case Protocol::Smtp:
            say("220 bench.backend ESMTP postern-bench\r\n");
            break;
    }
}

void Session::on_event(short what) {
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
        bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
        server_.retire(this);
    }
}

void Session::say(std::string_view text) {
    bufferevent_write(bev_.get(), text.data(), text.size());
}

void Session::on_read() {
    evbuffer* in = bufferevent_get_input(bev_.get());
    while (!closing_ && !streaming()) {
        if (literal_need_ > 0) {
            if (evbuffer_get_length(in) < literal_need_) {
                return;
            }
            const std::size_t old = command_.size();
            command_.resize(old + literal_need_);
            (void)evbuffer_remove(in, command_.data() + old, literal_need_);
            literal_need_ = 0;
            continue;
        }
        std::size_t len = 0;
        std::unique_ptr<char, CFree<&std::free>> line{evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)};
        if (!line) {
            if (evbuffer_get_length(in) > kMaxCommand) {
                say(protocol_ == Protocol::Pop3 ? "-ERR line too long\r\n" : "* BYE too long\r\n");
                finish_after_flush();
            }
            return;
        }
        command_.append(line.get(), len);
        if (protocol_ == Protocol::Imap && !command_.empty() && command_.back() == '}') {
            // A literal follows this line (RFC 9051 §4.3; "{n+}" is RFC 7888's non-sync one).
            const std::size_t open = command_.rfind('{');
            std::string_view n{command_};
            n = n.substr(open + 1, n.size() - open - 2);
            const bool sync = n.empty() || n.back() != '+';
            if (!sync) {
                n.remove_suffix(1);
            }
            literal_need_ = static_cast<std::size_t>(to_number(n));
            command_ += "\r\n";
            if (sync) {
                say("+ go ahead\r\n");
            }
            if (command_.size() + literal_need_ > kMaxCommand) {
                say("* BYE literal too long\r\n");
                finish_after_flush();
                return;
            }
            continue;
        }
        std::string command = std::move(command_);
        command_.clear();
        dispatch(command);
    }
}

void Session::on_write() {
    if (streaming()) {
        refill();
        if (!streaming()) {
            on_read();  // commands pipelined behind the bulk reply
        }
        return;
    }
    if (closing_ && evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0) {
        bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
        server_.retire(this);
    }
}

void Session::finish_after_flush() {
    closing_ = true;
    bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
    on_write();
}

void Session::start_bulk(std::uint64_t bytes, std::string trailer) {
    bulk_left_ = bytes;
    trailer_ = std::move(trailer);
    refill();
}

void Session::refill() {
    evbuffer* out = bufferevent_get_output(bev_.get());
    while (bulk_left_ > 0 && evbuffer_get_length(out) < kOutputHigh) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bulk_left_, kBlockBytes));
        evbuffer_add_reference(out, payload_block(), n, nullptr, nullptr);
        bulk_left_ -= n;
    }
    if (bulk_left_ == 0 && !trailer_.empty()) {
        say(trailer_);
        trailer_.clear();
    }
}

namespace {

int serve(int argc, char** argv) {
    CLI::App app{"postern-bench-backend: plaintext IMAP/POP3/SMTP fixture for the benchmark"};
    std::vector<std::string> imap;
    std::vector<std::string> pop3;
    std::vector<std::string> smtp;
    app.add_option("--imap", imap, "address to serve IMAP on (repeatable)");
    app.add_option("--pop3", pop3, "address to serve POP3 on (repeatable)");
    app.add_option("--smtp", smtp, "address to serve SMTP on (repeatable)");
    CLI11_PARSE(app, argc, argv);

    (void)::signal(SIGPIPE, SIG_IGN);
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &lim);
    }
    Server server;
    bool ok = !imap.empty() || !pop3.empty() || !smtp.empty();
    for (const auto& a : imap) {
        ok = ok && server.listen(Protocol::Imap, a);
    }
    for (const auto& a : pop3) {
        ok = ok && server.listen(Protocol::Pop3, a);
    }
    for (const auto& a : smtp) {
        ok = ok && server.listen(Protocol::Smtp, a);
    }
    if (!ok) {
        (void)std::fprintf(stderr, "postern-bench-backend: nothing to serve (see --help)\n");
        return 1;
    }
    return server.run();
}

}  // namespace
}  // namespace postern::bench::backend

int main(int argc, char** argv) {
    try {
        return postern::bench::backend::serve(argc, argv);
    } catch (const std::exception& e) {
        (void)std::fprintf(stderr, "postern-bench-backend: %s\n", e.what());
    } catch (...) {
        (void)std::fprintf(stderr, "postern-bench-backend: unknown error\n");
    }
    return 1;
}
