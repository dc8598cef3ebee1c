#pragma once
// [metrics] listen: Prometheus metrics and health over HTTP, served by libevent's evhttp on the
// main thread's loop (worker 0's), so a scrape never runs on a loop that serves mail.
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
#include "proxy/metrics.hpp"

#include <memory>
#include <string>
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

// What the answers are made of; all outlive the endpoint's last request (main thread).
struct MetricsSources {
    const std::vector<std::unique_ptr<Worker>>* workers = nullptr;
    const tls::CertSource* certs = nullptr;
    const Reloader* reloader = nullptr;
    const Drain* drain = nullptr;
    const Backends* backends = nullptr;
};

class MetricsEndpoint {
public:
    // Binds config.metrics.listen on `base`; null and no error when [metrics] is off, null
    // with `error` when it cannot be bound.
    [[nodiscard]] static std::unique_ptr<MetricsEndpoint> open(const conf::Config& config,
                                                               event_base* base,
                                                               std::string& error);
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
    MetricsEndpoint(MetricsEndpoint&&) = delete;
    MetricsEndpoint& operator=(MetricsEndpoint&&) = delete;
    ~MetricsEndpoint();

    // Answers from now on (until then every request gets 503).
    void serve(const MetricsSources& sources) noexcept { sources_ = sources; }

    // libevent entry points (proxy/trampoline.hpp)
    void on_request(evhttp_request* request);
    void fail_internal(const char* what) const;

private:
    struct HttpFree {
        void operator()(evhttp* http) const noexcept;
    };
    explicit MetricsEndpoint(std::unique_ptr<evhttp, HttpFree> http);
    [[nodiscard]] Scrape scrape() const;

    std::unique_ptr<evhttp, HttpFree> http_;
    MetricsSources sources_;
};

// The process_* figures from /proc/self; no open_fds if /proc/self/fd cannot be read (a process
// may read its own even when not dumpable, as under server.user).
[[nodiscard]] ProcessStats read_process_stats();

}  // namespace postern::proxy
