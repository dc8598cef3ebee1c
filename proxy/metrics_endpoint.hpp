#pragma once
// [metrics] listen: Prometheus metrics and health over HTTP, served by libevent's evhttp on a
// thread and loop of its own, so a scrape (a /proc/self/fd listing with thousands of sessions, a
// long /certificates report) never delays a session on a worker's loop.
//   GET /metrics  the text format 0.0.4 (proxy/metrics.hpp), counters summed over workers
//   GET /healthz  200 while the listeners are bound and a certificate set is loaded
//   GET /readyz   200, or 503 once the drain began (SIGTERM, or a SIGUSR2 replacement ready)
// Anything else is 404; methods other than GET and HEAD are 405 (those evhttp does not know, 501).
//
// The socket is bound by open(), before privileges are dropped, with SO_REUSEADDR and
// SO_REUSEPORT: a replacement (SIGUSR2) binds its own while this process drains, and /readyz
// here keeps answering 503 until this one exits (scrapes meanwhile reach either process). It is
// close-on-exec, so no program postern starts inherits it.

#include "conf/config.hpp"
#include "proxy/backends.hpp"
#include "proxy/event.hpp"
#include "proxy/metrics.hpp"

#include <memory>
#include <string>
#include <thread>
#include <vector>

struct event_base;
struct evhttp;
struct evhttp_request;

namespace postern::tls {
class CertSource;
}

namespace postern::proxy {

class Drain;
class Reloader;
class Worker;

// What the answers are made of, read from the endpoint's thread: the workers' counters (relaxed
// per-worker atomics), the store (CertSource's lock), the reload counts and the drain flag (both
// safe to read from any thread), the backends' failure counters (atomics). All outlive stop().
struct MetricsSources {
    const std::vector<std::unique_ptr<Worker>>* workers = nullptr;
    const tls::CertSource* certs = nullptr;
    const Reloader* reloader = nullptr;
    const Drain* drain = nullptr;
    const Backends* backends = nullptr;
};

class MetricsEndpoint {
public:
    // Binds config.metrics.listen; null and no error when [metrics] is off, null with `error`
    // when it cannot be bound. Nothing is answered before serve().
    [[nodiscard]] static std::unique_ptr<MetricsEndpoint> open(const conf::Config& config,
                                                               std::string& error);
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
    MetricsEndpoint(MetricsEndpoint&&) = delete;
    MetricsEndpoint& operator=(MetricsEndpoint&&) = delete;
    ~MetricsEndpoint();  // stop()

    // Starts the endpoint's thread, which answers from `sources` until stop().
    void serve(const MetricsSources& sources);
    // Breaks the endpoint's loop and joins its thread; call before any source is gone.
    void stop() noexcept;

    // libevent entry points (proxy/trampoline.hpp)
    void on_request(evhttp_request* request);
    void fail_internal(const char* what) const;

private:
    struct HttpFree {
        void operator()(evhttp* http) const noexcept;
    };
    MetricsEndpoint(EventBasePtr base, std::unique_ptr<evhttp, HttpFree> http);
    [[nodiscard]] Scrape scrape() const;

    EventBasePtr base_;
    std::unique_ptr<evhttp, HttpFree> http_;  // before base_ is freed
    MetricsSources sources_;                  // set before the thread starts
    std::jthread thread_;
};

// The process_* figures from /proc/self; no open_fds if /proc/self/fd cannot be read (a process
// may read its own even when not dumpable, as under server.user).
[[nodiscard]] ProcessStats read_process_stats();

}  // namespace postern::proxy
