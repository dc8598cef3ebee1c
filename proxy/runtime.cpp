#include "proxy/runtime.hpp"

#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"
#include "proxy/worker.hpp"
#include "tls/cert_checks.hpp"
#include "tls/cert_store.hpp"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <csignal>

namespace postern::proxy {
namespace {

struct StopContext {
    Worker* worker;
    int signal = 0;
};

void on_stop_signal(evutil_socket_t signal, short /*what*/, void* arg) noexcept {
    auto* stop = static_cast<StopContext*>(arg);
    stop->signal = signal;
    event_base_loopbreak(stop->worker->base());
}

}  // namespace

int run(const conf::Config& loaded) {
    conf::Config config = loaded;
    if (config.server.hostname.empty()) {
        config.server.hostname = machine_fqdn();
    }
    auto built = tls::CertStore::build(config);
    if (!built.store) {
        for (const auto& e : built.errors) {
            spdlog::error("{}", conf::format_error(e));
        }
        return 1;
    }
    spdlog::info("loaded {} certificate(s); default {}", built.store->certificates().size(),
                 config.tls.default_certificate);
    for (const auto& finding : tls::inspect(*built.store, config)) {
        spdlog::warn("{}: {}", finding.file, finding.message);
    }

    // A client vanishing mid-write must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);

    std::string error;
    auto worker = Worker::create(config, built.store, error);
    if (!worker) {
        spdlog::error("{}", error);
        return 1;
    }
    StopContext stop{.worker = worker.get()};
    EventPtr term{evsignal_new(worker->base(), SIGTERM, &on_stop_signal, &stop)};
    EventPtr intr{evsignal_new(worker->base(), SIGINT, &on_stop_signal, &stop)};
    if (!term || !intr || event_add(term.get(), nullptr) != 0 ||
        event_add(intr.get(), nullptr) != 0) {
        spdlog::error("cannot install signal handlers");
        return 1;
    }
    spdlog::info("postern {} ready", POSTERN_VERSION);
    if (event_base_dispatch(worker->base()) < 0) {
        spdlog::error("event loop failed");
        return 1;
    }
    spdlog::info("stopping on signal {}: closing {} session(s)", stop.signal,
                 worker->session_count());
    worker->stop_accepting();
    worker->close_all_sessions();
    return 0;
}

}  // namespace postern::proxy
