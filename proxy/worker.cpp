#include "proxy/worker.hpp"

#include "proxy/drain.hpp"
#include "proxy/log.hpp"
#include "proxy/proxy_protocol.hpp"
#include "proxy/session.hpp"
#include "proxy/trampoline.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>

namespace postern::proxy {

Worker::Worker(EventBasePtr base, std::shared_ptr<tls::CertSource> certs, ClientLimits& limits)
    : base_(std::move(base)), children_(base_.get()), certs_(std::move(certs)), limits_(limits) {
    reaper_.reset(event_new(base_.get(), -1, 0, &event_cb<Worker, &Worker::reap>, this));
    inbox_event_.reset(event_new(base_.get(), -1, 0, &event_cb<Worker, &Worker::on_inbox>, this));
    drain_event_.reset(event_new(base_.get(), -1, 0, &event_cb<Worker, &Worker::on_drain>, this));
}

Worker::~Worker() {
    sessions_.clear();  // before the listeners and the base they point into
    listeners_.clear();
}

std::unique_ptr<Worker> Worker::create(const conf::Config& config, const Backends& backends,
                                       std::shared_ptr<tls::CertSource> certs,
                                       const std::shared_ptr<tls::TicketKeys>& ticket_keys,
                                       ClientLimits& limits, ListenSockets& sockets, unsigned index,
                                       std::string& error) {
    EventBasePtr base{event_base_new()};
    if (!base) {
        error = "cannot create an event loop";
        return nullptr;
    }
    auto worker = std::make_unique<Worker>(std::move(base), std::move(certs), limits);
    for (const auto& spec : config.listeners) {
        auto ctx = std::make_unique<ListenerContext>();
        ctx->worker = worker.get();
        ctx->index = worker->listeners_.size();
        ctx->spec = spec;
        ctx->name = spec.listen.to_string();
        // The default backend first, then each other one the routes name.
        std::vector<std::string> names{spec.backend};
        for (const conf::Route& route : spec.routes) {
            if (std::find(names.begin(), names.end(), route.backend) == names.end()) {
                names.push_back(route.backend);
            }
        }
        for (const std::string& name : names) {
            const auto found = backends.find(name);
            if (found == backends.end()) {
                error = ctx->name;
                error.append(": no backend named ").append(name);
                return nullptr;
            }
            ctx->backends.push_back(
                BackendTarget{name, found->second.connector, found->second.spec->xclient});
        }
        const Backend& shared = backends.at(spec.backend);
        ctx->strict_sni = config.tls.strict_sni;
        ctx->front = tls::FrontContext::create(config.tls, spec.protocol, ticket_keys, error);
        if (!ctx->front) {
            error.insert(0, ctx->name + ": ");
            return nullptr;
        }
        ctx->machine.protocol = spec.protocol;
        ctx->machine.implicit_tls = spec.tls == conf::TlsMode::Implicit;
        ctx->machine.require_tls = spec.require_tls;
        ctx->machine.max_errors = spec.max_errors;
        ctx->machine.hostname = !spec.hostname.empty() ? spec.hostname : config.server.hostname;
        if (spec.protocol == conf::Protocol::Smtp && spec.tls == conf::TlsMode::StartTls) {
            ctx->backend_ehlo = shared.ehlo.get();
        }

        for (UniqueFd& fd : sockets.take(ctx->index, index)) {
            auto acceptor = std::make_unique<Acceptor>();
            acceptor->context = ctx.get();
            // libevent owns the descriptor from here (LEV_OPT_CLOSE_ON_FREE).
            acceptor->listener.reset(evconnlistener_new(
                worker->base(), &accept_cb<Acceptor, &Acceptor::on_accept>, acceptor.get(),
                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd.get()));
            if (!acceptor->listener) {
                error = "cannot accept on " + ctx->name;
                return nullptr;
            }
            (void)fd.release();
            evconnlistener_set_error_cb(acceptor->listener.get(),
                                        &accept_error_cb<Acceptor, &Acceptor::on_error>);
            acceptor->pause =
                std::make_unique<AcceptPause>(worker->base(), acceptor->listener.get(), ctx->name);
            ctx->acceptors.push_back(std::move(acceptor));
        }
        spdlog::info("listening on {} protocol={} tls={} backend={} routes={}{}", ctx->name,
                     conf::to_string(spec.protocol), conf::to_string(spec.tls), spec.backend,
                     spec.routes.size(), spec.accept_proxy ? " accept_proxy" : "");
        worker->listeners_.push_back(std::move(ctx));
    }
    return worker;
}

void Worker::on_accept(ListenerContext& listener, int fd, const sockaddr* peer) {
    UniqueFd owned{fd};
    std::string address = to_string(peer);
    if (listener.spec.accept_proxy && !trusted_proxy(listener.spec.trusted_proxies, peer)) {
        // Before any byte is read: only a trusted balancer may say who the client is.
        spdlog::warn("listener {}: refused a connection from {}: not in trusted_proxies",
                     listener.name, sanitize(address));
        return;
    }
    // The limits before the socket goes anywhere. With accept_proxy the client is not known
    // yet: its own limits wait for the header (Session::step_proxy_header).
    Admission admission{limits_, listener.index};
    Limit refused = admission.take_session();
    if (refused == Limit::None && !listener.spec.accept_proxy) {
        refused = admission.admit_client(peer);
    }
    if (refused != Limit::None) {
        refuse(listener, std::move(owned), refused, admission, address);
        return;
    }
    if (balancer_ != nullptr) {
        const std::size_t to = balancer_->place(index_);
        if (to != index_) {
            spdlog::debug("{}: connection from {} handed over from worker {} to worker {}",
                          listener.name, address, index_ + 1, to + 1);
            try {
                balancer_->worker(to).deliver(std::move(owned), listener.index, std::move(address),
                                              std::move(admission));
            } catch (...) {
                balancer_->release(to);
                throw;
            }
            return;
        }
    }
    adopt(listener, std::move(owned), std::move(address), std::move(admission));
}

// A connection over a limit: the protocol's temporary error on a STARTTLS listener, written
// at once into the fresh socket's empty send buffer (it fits), then closed; an implicit-TLS
// listener closes it before the handshake. No session is made for it.
void Worker::refuse(ListenerContext& listener, UniqueFd fd, Limit limit, const Admission& admission,
                    const std::string& client_address) const {
    listener.counters.rejected(limit);
    admission.log_refusal(limit, client_address);
    const std::string reply =
        refusal_reply(listener.spec.protocol, listener.spec.tls, limit, listener.machine.hostname);
    if (!reply.empty()) {
        (void)::send(fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

void Worker::deliver(UniqueFd fd, std::size_t listener, std::string client_address,
                     Admission admission) {
    {
        const std::lock_guard lock(inbox_mutex_);
        inbox_.push_back(
            {std::move(fd), listener, std::move(client_address), std::move(admission)});
        drained_.store(false);
    }
    event_active(inbox_event_.get(), 0, 0);  // wakes this worker's loop (libevent threads)
}

void Worker::on_inbox() {
    std::vector<Delivered> arrived;
    {
        const std::lock_guard lock(inbox_mutex_);
        arrived.swap(inbox_);
    }
    for (Delivered& d : arrived) {
        try {
            adopt(*listeners_[d.listener], std::move(d.fd), std::move(d.client_address),
                  std::move(d.admission));
        } catch (const std::exception& e) {
            spdlog::error("{}: taking over a connection: {}", listeners_[d.listener]->name,
                          e.what());
        }
    }
}

void Worker::adopt(ListenerContext& listener, UniqueFd fd, std::string client_address,
                   Admission admission) {
    Session* raw = nullptr;
    try {
        auto session =
            std::make_unique<Session>(listener, std::move(fd), std::move(client_address));
        session->hold(std::move(admission));
        if (draining_) {
            session->drain();  // applied by start()
        }
        raw = session.get();
        sessions_.emplace(raw, std::move(session));
        listener.counters.sessions_started.add();
    } catch (...) {
        if (balancer_ != nullptr) {
            balancer_->release(index_);  // counted by place(), never to be reaped
        }
        throw;
    }
    // A session that fails to start is retired like any other, so reaped and uncounted.
    try {
        raw->start();
    } catch (const std::exception& e) {
        raw->fail_internal(e.what());
    } catch (...) {
        raw->fail_internal("unknown exception while starting");
    }
}

void Worker::on_accept_error(Acceptor& acceptor) {
    acceptor.pause->on_error(EVUTIL_SOCKET_ERROR());
}

void Worker::retire(Session* session) {
    retired_.push_back(session);
    event_active(reaper_.get(), 0, 0);
}

void Worker::reap() {
    std::vector<Session*> dead;
    dead.swap(retired_);
    for (Session* s : dead) {
        if (sessions_.erase(s) == 1 && balancer_ != nullptr) {
            balancer_->release(index_);
        }
    }
    if (draining_) {
        check_drained();
    }
}

void Worker::stop_accepting() {
    for (auto& l : listeners_) {
        l->acceptors.clear();  // each pause's timer before its listener
    }
}

void Worker::close_all_sessions() {
    on_inbox();  // sockets handed over but not yet taken: sessions too, closed like the rest
    for (Session* s : open_sessions()) {
        s->stop();
    }
    reap();
}

void Worker::drain(Drain& drain) {
    drain_ = &drain;
    event_active(drain_event_.get(), 0, 0);  // wakes this worker's loop (libevent threads)
}

void Worker::on_drain() {
    if (draining_) {
        return;
    }
    draining_ = true;
    stop_accepting();
    on_inbox();  // sockets handed over but not yet taken: sessions that drain at once
    for (Session* s : open_sessions()) {
        s->drain();
    }
    check_drained();
}

std::vector<Session*> Worker::open_sessions() const {
    // A copy: nothing a session does as it stops or drains may invalidate the caller's loop
    // (retire() only queues it today).
    std::vector<Session*> open;
    open.reserve(sessions_.size());
    for (const auto& [raw, owned] : sessions_) {
        open.push_back(raw);
    }
    return open;
}

void Worker::check_drained() {
    if (!sessions_.empty()) {
        return;
    }
    {
        const std::lock_guard lock(inbox_mutex_);
        if (!inbox_.empty()) {
            return;  // its event adopts them
        }
        drained_.store(true);
    }
    drain_->worker_drained();
}

void Worker::fail_internal(const char* what) const {
    spdlog::error("worker {}: {}", index_ + 1, what);
}

const BackendTarget& ListenerContext::backend_for(std::string_view server_name) const {
    const std::string& chosen = conf::Config::route(spec, server_name);
    const auto it = std::find_if(backends.begin(), backends.end(),
                                 [&chosen](const BackendTarget& t) { return t.name == chosen; });
    return it != backends.end() ? *it : backends.front();
}

// NOLINTNEXTLINE(readability-make-member-function-const): a trampoline target, non-const
void Acceptor::on_accept(evutil_socket_t fd, const sockaddr* peer) {
    context->worker->on_accept(*context, fd, peer);
}

void Acceptor::on_error() {
    context->worker->on_accept_error(*this);
}

void Acceptor::fail_internal(const char* what) const {
    spdlog::error("accept on {}: {}", context->name, what);
}

}  // namespace postern::proxy
