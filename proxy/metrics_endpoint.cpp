#include "proxy/metrics_endpoint.hpp"

#include "proxy/drain.hpp"
#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"
#include "proxy/reloader.hpp"
#include "proxy/trampoline.hpp"
#include "proxy/worker.hpp"
#include "tls/cert_source.hpp"
#include "tls/certificate_report.hpp"

#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <netinet/in.h>
#include <sstream>
#include <string_view>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

namespace postern::proxy {
namespace {

// A few scrapes at once at most; anything slow is a stuck client.
constexpr int kTimeoutSeconds = 10;
constexpr ev_ssize_t kMaxHeaders = 8192;
constexpr ev_ssize_t kMaxBody = 1024;  // no request has one; a POST gets its 405, not a 413

std::string_view key_type_label(tls::KeyType type) noexcept {
    switch (type) {
        case tls::KeyType::Ecdsa:
            return "ecdsa";
        case tls::KeyType::Rsa:
            return "rsa";
        case tls::KeyType::Other:
            break;
    }
    return "other";
}

UniqueFd bind_socket(const conf::Endpoint& endpoint, std::string& error) {
    SocketAddress address;
    if (!resolve(endpoint, address, error)) {
        return {};
    }
    UniqueFd fd{::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    const int one = 1;
    if (fd.get() < 0 || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        ::bind(fd.get(), address.get(), address.length) != 0 || ::listen(fd.get(), 64) != 0) {
        error = std::system_category().message(errno);
        return {};
    }
    return fd;
}

void reply(evhttp_request* request, int code, const char* reason, std::string_view body,
           const char* type = "text/plain; charset=utf-8") {
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Content-Type", type);
    evbuffer* out = evbuffer_new();
    if (out == nullptr) {
        evhttp_send_error(request, HTTP_INTERNAL, nullptr);
        return;
    }
    evbuffer_add(out, body.data(), body.size());
    evhttp_send_reply(request, code, reason, out);
    evbuffer_free(out);
}

}  // namespace

void MetricsEndpoint::HttpFree::operator()(evhttp* http) const noexcept {
    evhttp_free(http);
}

MetricsEndpoint::MetricsEndpoint(EventBasePtr base, std::unique_ptr<evhttp, HttpFree> http)
    : base_(std::move(base)), http_(std::move(http)) {}

MetricsEndpoint::~MetricsEndpoint() {
    stop();
}

void MetricsEndpoint::serve(const MetricsSources& sources) {
    sources_ = sources;
    thread_ = std::jthread{[base = base_.get()] {
        if (event_base_dispatch(base) < 0) {
            spdlog::error("metrics endpoint: event loop failed");
        }
    }};
}

void MetricsEndpoint::stop() noexcept {
    if (thread_.joinable()) {
        event_base_loopbreak(base_.get());  // thread-safe: evthread_use_pthreads() is on
        thread_.join();
    }
}

std::unique_ptr<MetricsEndpoint> MetricsEndpoint::open(const conf::Config& config,
                                                       std::string& error) {
    if (!config.metrics.listen) {
        return nullptr;
    }
    const conf::Endpoint& listen = *config.metrics.listen;
    const auto fail = [&](const std::string& why) {
        error = conf::format_error({config.file.string(), config.metrics.listen_at.line,
                                    config.metrics.listen_at.column, "metrics.listen",
                                    "cannot listen on " + listen.to_string() + ": " + why});
        return nullptr;
    };
    EventBasePtr base{event_base_new()};
    if (!base) {
        return fail("event_base_new failed");
    }
    std::unique_ptr<evhttp, HttpFree> http{evhttp_new(base.get())};
    if (!http) {
        return fail("evhttp_new failed");
    }
    std::string why;
    UniqueFd fd = bind_socket(listen, why);
    if (fd.get() < 0) {
        return fail(why);
    }
    // evhttp closes the socket with itself (LEV_OPT_CLOSE_ON_FREE) once it took it.
    if (evhttp_accept_socket_with_handle(http.get(), fd.get()) == nullptr) {
        return fail("evhttp_accept_socket_with_handle failed");
    }
    (void)fd.release();
    evhttp_set_timeout(http.get(), kTimeoutSeconds);
    evhttp_set_max_headers_size(http.get(), kMaxHeaders);
    evhttp_set_max_body_size(http.get(), kMaxBody);
    std::unique_ptr<MetricsEndpoint> endpoint{
        new MetricsEndpoint(std::move(base), std::move(http))};
    evhttp_set_gencb(endpoint->http_.get(), &http_cb<MetricsEndpoint, &MetricsEndpoint::on_request>,
                     endpoint.get());
    spdlog::info("metrics and health on http://{}/metrics", listen.to_string());
    return endpoint;
}

void MetricsEndpoint::on_request(evhttp_request* request) {
    const char* uri = evhttp_request_get_uri(request);
    std::string_view path = uri != nullptr ? uri : "";
    path = path.substr(0, path.find('?'));
    const evhttp_cmd_type method = evhttp_request_get_command(request);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", "GET, HEAD");
        reply(request, HTTP_BADMETHOD, "Method Not Allowed", "GET or HEAD only\n");
        return;
    }
    if (path == "/metrics") {
        std::string text;
        try {
            text = render(scrape());
        } catch (const std::exception& e) {
            spdlog::error("metrics: {}", e.what());
            reply(request, HTTP_INTERNAL, "Internal Server Error", "internal error\n");
            return;
        }
        reply(request, HTTP_OK, "OK", text, "text/plain; version=0.0.4; charset=utf-8");
    } else if (path == "/healthz") {
        // The listeners were bound before serve(); a store is only ever replaced by a whole one.
        const auto store = sources_.certs->current();
        if (store && !store->certificates().empty()) {
            reply(request, HTTP_OK, "OK", "ok\n");
        } else {
            reply(request, HTTP_SERVUNAVAIL, "Service Unavailable", "no certificate\n");
        }
    } else if (path == "/certificates") {
        // The same report as `postern check --json`, of the store serving now.
        const auto store = sources_.certs->current();
        reply(request, HTTP_OK, "OK", tls::certificates_json(*store, std::time(nullptr)) + "\n",
              "application/json");
    } else if (path == "/readyz") {
        if (sources_.drain->started()) {
            reply(request, HTTP_SERVUNAVAIL, "Service Unavailable", "draining\n");
        } else {
            reply(request, HTTP_OK, "OK", "ready\n");
        }
    } else {
        reply(request, HTTP_NOTFOUND, "Not Found", "not found\n");
    }
}

void MetricsEndpoint::fail_internal(const char* what) const {
    spdlog::error("metrics endpoint: {}", what);
}

Scrape MetricsEndpoint::scrape() const {
    Scrape s;
    const auto& workers = *sources_.workers;
    if (!workers.empty()) {
        const std::size_t listeners = workers.front()->listeners().size();
        std::vector<const ListenerCounters*> per_worker;
        for (std::size_t i = 0; i < listeners; ++i) {
            per_worker.clear();
            for (const auto& worker : workers) {
                per_worker.push_back(&worker->listeners().at(i)->counters);
            }
            s.listeners.push_back(
                sum_listener(workers.front()->listeners().at(i)->name, per_worker, s.served));
        }
    }
    const auto store = sources_.certs->current();
    for (const auto& c : store->certificates()) {
        s.certificates.push_back({.name = c->primary_name(),
                                  .file = c->data.cert_file.string(),
                                  .key_type = std::string{key_type_label(c->key_type)},
                                  .not_after = static_cast<std::int64_t>(c->not_after)});
    }
    for (const auto& [name, backend] : *sources_.backends) {
        const auto* tcp = dynamic_cast<const TcpConnector*>(backend.connector.get());
        if (tcp == nullptr) {
            continue;  // an exec backend: no address to fail
        }
        for (std::size_t i = 0; i < tcp->targets().size(); ++i) {
            s.backends.push_back({name, tcp->targets()[i].text, tcp->failures(i)});
        }
    }
    std::sort(s.backends.begin(), s.backends.end(), [](const auto& a, const auto& b) {
        return a.backend != b.backend ? a.backend < b.backend : a.address < b.address;
    });
    const Reloader::Counts reloads = sources_.reloader->counts();
    s.reloads_succeeded = reloads.succeeded;
    s.reloads_failed = reloads.failed;
    s.last_reload_success = static_cast<std::int64_t>(reloads.last_success);
    s.version = POSTERN_VERSION;
    s.openssl = OpenSSL_version(OPENSSL_VERSION_STRING);
    s.process = read_process_stats();
    return s;
}

ProcessStats read_process_stats() {
    ProcessStats p;
    const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    std::ifstream stat_file{"/proc/self/stat"};
    const std::string stat{std::istreambuf_iterator<char>{stat_file}, {}};
    // Fields after the command name, which may hold spaces and parentheses: from the last ')'.
    const auto close = stat.rfind(')');
    if (close != std::string::npos && ticks > 0) {
        std::istringstream fields{stat.substr(close + 2)};
        std::vector<std::string> f{std::istream_iterator<std::string>{fields}, {}};
        // state is field 3; utime 14, stime 15, starttime 22 (proc(5)): index = field - 3.
        if (f.size() > 19) {
            p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
            const double started_after_boot = std::stod(f[19]) / ticks;
            std::ifstream boot{"/proc/stat"};
            for (std::string line; std::getline(boot, line);) {
                if (line.rfind("btime ", 0) == 0) {
                    p.start_time = std::stod(line.substr(6)) + started_after_boot;
                    break;
                }
            }
        }
    }
    std::ifstream statm{"/proc/self/statm"};
    std::uint64_t size = 0;
    std::uint64_t resident = 0;
    if (statm >> size >> resident) {
        p.resident_bytes = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    std::error_code error;
    std::filesystem::directory_iterator fds{"/proc/self/fd", error};
    if (!error) {
        std::uint64_t count = 0;
        for (; fds != std::filesystem::directory_iterator{}; fds.increment(error)) {
            ++count;
        }
        if (!error && count > 0) {
            p.open_fds = count - 1;  // not the iterator's own descriptor
        }
    }
    return p;
}

}  // namespace postern::proxy
