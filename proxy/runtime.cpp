#include "proxy/runtime.hpp"

#include "proxy/client_limits.hpp"
#include "proxy/drain.hpp"
#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"
#include "proxy/inherited_sockets.hpp"
#include "proxy/listen_sockets.hpp"
#include "proxy/metrics_endpoint.hpp"
#include "proxy/open_files.hpp"
#include "proxy/privileges.hpp"
#include "proxy/reloader.hpp"
#include "proxy/replacement.hpp"
#include "proxy/service_manager.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"
#include "tls/cert_checks.hpp"
#include "tls/cert_store.hpp"

#include <event2/event.h>
#include <event2/thread.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <thread>
#include <vector>

namespace postern::proxy {
namespace {

// Runs on worker 0's loop (the main thread); the other loops are woken through libevent's
// pthread notification, which evthread_use_pthreads() turned on. The first SIGTERM or SIGINT
// drains (proxy/drain.hpp), a second one closes everything at once (nginx's fast shutdown).
struct StopContext {
    Drain* drain = nullptr;
    ServiceManager* manager = nullptr;
    int signals = 0;  // received so far

    void on_signal(evutil_socket_t number, short /*what*/) {
        if (signals++ > 0 || drain->started()) {
            drain->hurry();
            return;
        }
        manager->stopping();
        drain->start("stopping on signal " + std::to_string(number));
    }
    // The replacement (proxy/replacement.hpp) is ready: drain, as for a signal, but the service
    // goes on in the new process, so the manager hears nothing more from this one.
    void on_replaced(pid_t pid) const {
        if (drain->started()) {
            return;
        }
        manager->hand_over();
        drain->start("replaced by process " + std::to_string(pid));
    }
    static void fail_internal(const char* what) { spdlog::error("stop signal: {}", what); }
};

// server.max_sessions as the open-files limit allows it (proxy/open_files.hpp), after raising
// the soft limit to the hard one; 0 when it cannot start (logged).
std::size_t max_sessions_within_limit(const conf::Config& config, unsigned workers) {
    const std::uint64_t open_files = raise_open_files_limit();
    const SessionsFit fit = fit_max_sessions(config, workers, open_files);
    if (!fit.message.empty()) {
        const conf::Source at = config.server.max_sessions_at;
        const std::string text = conf::format_error(
            {config.file.string(), at.line, at.column, "server.max_sessions", fit.message});
        if (fit.sessions == 0) {
            spdlog::error("{}", text);
        } else {
            // Only an unwritten default is lowered (a written value that does not fit stops
            // run): the admin asked for nothing, so it is news, not a warning.
            spdlog::info("{}", text);
        }
    }
    return fit.sessions;
}

}  // namespace

unsigned worker_count(unsigned configured) {
    if (configured != 0) {
        return configured;
    }
    return std::max(1U, std::thread::hardware_concurrency());
}

int run(const conf::Config& loaded, std::shared_ptr<const conf::FileSnapshot> files,
        const std::vector<std::string>& arguments) {
    // First, before anything opens a descriptor: what a service manager or the process this
    // one replaces handed over.
    Predecessor predecessor = Predecessor::from_environment();
    std::string inherit_error;
    std::vector<InheritedSocket> inherited = take_inherited_sockets(inherit_error);
    if (!inherit_error.empty()) {
        spdlog::error("{}", inherit_error);
        return 1;
    }
    conf::Config config = loaded;
    if (config.server.hostname.empty()) {
        config.server.hostname = machine_fqdn();
    }
    // Forked before any thread exists (the certificate loader's included).
    std::unique_ptr<PrivilegedHelper> helper;
    if (!start_privilege_separation(config, arguments, helper)) {
        return 1;
    }
    auto built = tls::CertStore::build(config, *files);
    if (!built.store) {
        for (const auto& e : built.errors) {
            spdlog::error("{}", conf::format_error(e));
        }
        return 1;
    }
    spdlog::info("loaded {} certificate(s); default {}", built.store->certificates().size(),
                 config.tls.default_certificate);
    for (const auto& finding :
         tls::inspect(*built.store, config, std::time(nullptr), files.get())) {
        spdlog::warn("{}: {}", finding.file, finding.message);
    }
    // One set of ticket keys for every listener and worker, so any of them resumes a session.
    const auto ticket_keys = std::make_shared<tls::TicketKeys>();
    if (std::string error; !ticket_keys->load(config.tls, *files, error)) {
        spdlog::error("tls.ticket_keys_file: {}", error);
        return 1;
    }
    spdlog::info("session tickets: {}", ticket_keys->describe());
    files.reset();  // keys stay in memory only inside the store's SSL_CTXs and ticket_keys

    // A client vanishing mid-write must not kill the process. SIGCHLD at its default (not
    // ignored, as a supervisor may have left it): exec backends' programs stay ours to reap.
    if (std::signal(SIGPIPE, SIG_IGN) == SIG_ERR || std::signal(SIGCHLD, SIG_DFL) == SIG_ERR) {
        spdlog::error("cannot set up SIGPIPE and SIGCHLD");
        return 1;
    }

    const unsigned count = worker_count(config.server.workers);
    const std::size_t max_sessions = max_sessions_within_limit(config, count);
    if (max_sessions == 0) {
        return 1;
    }
    // Reloads build off the loop and wake it from their thread; workers are threads too.
    if (evthread_use_pthreads() != 0) {
        spdlog::error("cannot enable libevent's thread support");
        return 1;
    }
    auto source = std::make_shared<tls::CertSource>(built.store);
    // Every worker binds every listener; with more than one, SO_REUSEPORT lets the kernel
    // spread new connections across them, by a hash, which the Balancer evens out
    // (proxy/balancer.hpp). Declared first: workers point at it until they are gone.
    Balancer balancer{count};
    // The connection limits all workers share; sessions hold Admissions into it until reaped.
    ClientLimits limits{max_sessions, ClientLimits::of(config)};
    std::vector<std::unique_ptr<Worker>> workers;
    // One connector and one EHLO learner per backend for the whole process. Declared after the
    // workers, so gone before them: the learners run on worker 0's loop.
    Backends backends;
    if (std::string error; !make_backends(config, helper.get(), backends, error)) {
        spdlog::error("{}", error);
        return 1;
    }
    ListenSockets sockets;
    if (std::string error; !sockets.open(config, count, std::move(inherited), error)) {
        spdlog::error("{}", error);
        return 1;
    }
    if (sockets.inherited_count() > 0) {
        spdlog::info(
            "took over {} listening socket(s) from {}", sockets.inherited_count(),
            predecessor.exists() ? "the process this one replaces" : "the service manager");
    }
    for (unsigned i = 0; i < count; ++i) {
        std::string error;
        auto worker =
            Worker::create(config, backends, source, ticket_keys, limits, sockets, i, error);
        if (!worker) {
            spdlog::error("{}", error);
            return 1;
        }
        if (count > 1) {
            balancer.attach(i, *worker);
        }
        workers.push_back(std::move(worker));
    }
    event_base* main_base = workers.front()->base();
    // Bound like the listeners, before privileges are dropped; answers from serve() on.
    std::string metrics_error;
    const auto metrics = MetricsEndpoint::open(config, metrics_error);
    if (!metrics_error.empty()) {
        spdlog::error("{}", metrics_error);
        return 1;
    }
    // Every listener is bound; no worker thread, reload or exec program has started yet.
    if (!finish_privilege_separation(config, helper.get())) {
        return 1;
    }
    // After the workers, so its timer is freed before their loops; before the Reloader, which
    // reports to it.
    ServiceManager manager{limits, *source};
    manager.watch(main_base);
    Drain drain{main_base, workers, count > 1 ? &balancer : nullptr,
                config.server.shutdown_timeout};
    StopContext stop{.drain = &drain, .manager = &manager};
    const event_callback_fn on_stop = &event_cb<StopContext, &StopContext::on_signal>;
    EventPtr term{evsignal_new(main_base, SIGTERM, on_stop, &stop)};
    EventPtr intr{evsignal_new(main_base, SIGINT, on_stop, &stop)};
    Reloader reloader{main_base, loaded, source, helper.get()};  // as written: compared at reload
    reloader.report_to(manager);
    reloader.reload_ticket_keys(ticket_keys);
    const event_callback_fn on_hup = &event_cb<Reloader, &Reloader::on_signal>;
    EventPtr hup{evsignal_new(main_base, SIGHUP, on_hup, &reloader)};
    Replacement replacement{main_base, sockets,      drain,
                            arguments, helper.get(), [&stop](pid_t pid) { stop.on_replaced(pid); }};
    const event_callback_fn on_usr2 = &event_cb<Replacement, &Replacement::on_signal>;
    EventPtr usr2{evsignal_new(main_base, SIGUSR2, on_usr2, &replacement)};
    if (!term || !intr || !hup || !usr2 || event_add(term.get(), nullptr) != 0 ||
        event_add(intr.get(), nullptr) != 0 || event_add(hup.get(), nullptr) != 0 ||
        event_add(usr2.get(), nullptr) != 0) {
        spdlog::error("cannot install signal handlers");
        return 1;
    }
    reloader.start();
    if (metrics) {
        metrics->serve({.workers = &workers,
                        .certs = source.get(),
                        .reloader = &reloader,
                        .drain = &drain,
                        .backends = &backends});
    }
    start_ehlos(backends, main_base, workers.front()->children());
    spdlog::info("postern {} ready ({} worker(s), at most {} sessions)", POSTERN_VERSION, count,
                 max_sessions);
    manager.ready(predecessor.exists());  // every listener bound, the certificates loaded
    predecessor.ready();
    {
        std::vector<std::jthread> threads;
        for (std::size_t i = 1; i < workers.size(); ++i) {
            threads.emplace_back([base = workers[i]->base()] { event_base_dispatch(base); });
        }
        if (event_base_dispatch(main_base) < 0) {
            spdlog::error("event loop failed");
        }
        for (auto& worker : workers) {
            event_base_loopbreak(worker->base());
        }
        if (metrics) {
            metrics->stop();  // before the drain, reloader and workers it reads are gone
        }
    }  // joins the other workers' threads; from here every loop is stopped
    drain.log_end();
    for (auto& worker : workers) {
        worker->stop_accepting();
        worker->close_all_sessions();
    }
    backends.clear();  // the EHLO learners, and a program one may be running for its probe
    // Every exec backend's program has had its SIGTERM by now: one deadline for them all.
    const auto children_deadline = ChildReaper::Clock::now() + ChildReaper::kShutdownGrace;
    for (auto& worker : workers) {
        worker->children().shutdown(children_deadline);
    }
    return 0;
}

}  // namespace postern::proxy
