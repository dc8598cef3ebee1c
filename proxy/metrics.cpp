// The Prometheus text format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): one # HELP and one # TYPE
// line per family, then its samples, `name{label="value",...} value`.

#include "proxy/metrics.hpp"

#include <openssl/ssl.h>

#include <cstdio>
#include <initializer_list>
#include <utility>

namespace postern::proxy {
namespace {

using Label = std::pair<std::string_view, std::string_view>;

class Writer {
public:
    void family(std::string_view name, std::string_view help, std::string_view type) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;  // our own text: no backslash or line feed to escape
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value) {
        begin(name, labels);
        out_ += std::to_string(value);
        out_ += '\n';
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, std::int64_t value) {
        begin(name, labels);
        out_ += std::to_string(value);
        out_ += '\n';
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, double value) {
        begin(name, labels);
        std::array<char, 32> text{};
        const int n = std::snprintf(text.data(), text.size(), "%.17g", value);
        out_.append(text.data(), static_cast<std::size_t>(n));
        out_ += '\n';
    }
    [[nodiscard]] std::string take() { return std::move(out_); }

private:
    void begin(std::string_view name, std::initializer_list<Label> labels) {
        out_ += name;
        if (labels.size() != 0) {
            char separator = '{';
            for (const auto& [key, value] : labels) {
                out_ += separator;
                out_ += key;
                out_ += "=\"";
                out_ += escape_label_value(value);
                out_ += '"';
                separator = ',';
            }
            out_ += '}';
        }
        out_ += ' ';
    }

    std::string out_;
};

void render_sessions(Writer& w, const std::vector<ListenerTotals>& listeners) {
    w.family("postern_sessions_active", "Sessions open now.", "gauge");
    for (const auto& l : listeners) {
        w.sample("postern_sessions_active", {{"listener", l.name}}, l.sessions_active);
    }
    w.family("postern_sessions_total",
             "Sessions ended, by the end reason of their session log line.", "counter");
    for (const auto& l : listeners) {
        for (std::size_t i = 0; i < kCloseReasons; ++i) {
            const auto end = protocols::to_string(static_cast<protocols::CloseReason>(i));
            w.sample("postern_sessions_total", {{"listener", l.name}, {"end", end}},
                     l.sessions_ended.at(i));
        }
    }
}

void render_tls(Writer& w, const std::vector<ListenerTotals>& listeners) {
    w.family("postern_handshakes_total", "TLS handshakes with clients, by result and version.",
             "counter");
    for (const auto& l : listeners) {
        for (std::size_t r = 0; r < kHandshakeResults; ++r) {
            for (std::size_t v = 0; v < kTlsVersionLabels.size(); ++v) {
                const std::uint64_t n = l.handshakes.at(r).at(v);
                // Versions never negotiated stay out unless counted, to keep the page short;
                // the results of the common versions are always there, so rate() sees a zero.
                if (n == 0 && kTlsVersionLabels.at(v) != "TLSv1.2" &&
                    kTlsVersionLabels.at(v) != "TLSv1.3") {
                    continue;
                }
                w.sample("postern_handshakes_total",
                         {{"listener", l.name},
                          {"result", to_string(static_cast<HandshakeResult>(r))},
                          {"version", kTlsVersionLabels.at(v)}},
                         n);
            }
        }
    }
    w.family("postern_resumed_handshakes_total",
             "Successful TLS handshakes that resumed a session (ticket or cache).", "counter");
    for (const auto& l : listeners) {
        w.sample("postern_resumed_handshakes_total", {{"listener", l.name}}, l.resumed_handshakes);
    }
    w.family("postern_starttls_total", "STARTTLS commands accepted (the upgrade began).",
             "counter");
    for (const auto& l : listeners) {
        w.sample("postern_starttls_total", {{"listener", l.name}}, l.starttls);
    }
    w.family("postern_starttls_discarded_bytes_total",
             "Bytes a client sent after STARTTLS before the handshake, discarded (command "
             "injection defence).",
             "counter");
    for (const auto& l : listeners) {
        w.sample("postern_starttls_discarded_bytes_total", {{"listener", l.name}},
                 l.starttls_discarded_bytes);
    }
}

void render_served(Writer& w, const Scrape& s) {
    w.family("postern_certificate_served_total",
             "Successful TLS handshakes by the certificate served (its first name; \"default\": "
             "the client named no certificate postern holds, or none).",
             "counter");
    for (const auto& [name, n] : s.served) {
        w.sample("postern_certificate_served_total", {{"certificate", name}}, n);
    }
    w.family("postern_sni_rejected_total",
             "Handshakes refused because the client named a certificate postern does not hold "
             "(strict_sni).",
             "counter");
    for (const auto& l : s.listeners) {
        w.sample("postern_sni_rejected_total", {{"listener", l.name}}, l.sni_rejected);
    }
}

void render_limits(Writer& w, const std::vector<ListenerTotals>& listeners) {
    w.family("postern_limit_rejected_total",
             "Connections refused by a limit (max_sessions, max_sessions_per_client, "
             "max_new_per_client).",
             "counter");
    for (const auto& l : listeners) {
        for (std::size_t i = 0; i < kCountedLimits.size(); ++i) {
            w.sample("postern_limit_rejected_total",
                     {{"listener", l.name}, {"limit", to_string(kCountedLimits.at(i))}},
                     l.limit_rejected.at(i));
        }
    }
}

void render_certificates(Writer& w, const Scrape& s) {
    w.family("postern_certificate_not_after_seconds",
             "The notAfter of each loaded certificate, as Unix time.", "gauge");
    for (const auto& c : s.certificates) {
        w.sample("postern_certificate_not_after_seconds",
                 {{"certificate", c.name}, {"file", c.file}, {"key_type", c.key_type}},
                 c.not_after);
    }
    w.family("postern_certificate_reloads_total",
             "Certificate reloads, by result (a failed one keeps the previous certificates).",
             "counter");
    w.sample("postern_certificate_reloads_total", {{"result", "success"}}, s.reloads_succeeded);
    w.sample("postern_certificate_reloads_total", {{"result", "failure"}}, s.reloads_failed);
    w.family("postern_certificate_last_reload_success_timestamp_seconds",
             "When the certificates now served were loaded, as Unix time.", "gauge");
    w.sample("postern_certificate_last_reload_success_timestamp_seconds", {},
             s.last_reload_success);
}

void render_backends(Writer& w, const Scrape& s) {
    w.family("postern_backend_connect_failures_total",
             "Connections to a backend address that failed (refused, timed out, unreachable).",
             "counter");
    for (const auto& b : s.backends) {
        w.sample("postern_backend_connect_failures_total",
                 {{"backend", b.backend}, {"address", b.address}}, b.failures);
    }
}

void render_process(Writer& w, const Scrape& s) {
    w.family("postern_build_info", "postern's version and the OpenSSL it runs with.", "gauge");
    w.sample("postern_build_info", {{"version", s.version}, {"openssl", s.openssl}},
             std::uint64_t{1});
    w.family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
             "counter");
    w.sample("process_cpu_seconds_total", {}, s.process.cpu_seconds);
    w.family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
    w.sample("process_resident_memory_bytes", {}, s.process.resident_bytes);
    w.family("process_open_fds", "Number of open file descriptors.", "gauge");
    if (s.process.open_fds) {
        w.sample("process_open_fds", {}, *s.process.open_fds);
    }
    w.family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
             "gauge");
    w.sample("process_start_time_seconds", {}, s.process.start_time);
}

}  // namespace

std::string_view to_string(HandshakeResult result) noexcept {
    switch (result) {
        case HandshakeResult::Ok:
            return "ok";
        case HandshakeResult::Failed:
            return "failed";
        case HandshakeResult::Timeout:
            return "timeout";
    }
    return "unknown";
}

std::size_t tls_version_index(int version) noexcept {
    switch (version) {
        case TLS1_VERSION:
            return 0;
        case TLS1_1_VERSION:
            return 1;
        case TLS1_2_VERSION:
            return 2;
        case TLS1_3_VERSION:
            return 3;
        default:
            return kTlsVersionLabels.size() - 1;
    }
}

void ServedCounters::add(std::string_view certificate) {
    auto it = counters_.find(certificate);
    if (it == counters_.end()) {
        const std::lock_guard lock{insert_mutex_};
        it = counters_.try_emplace(std::string{certificate}).first;
    }
    it->second.add();
}

void ServedCounters::sum_into(std::map<std::string, std::uint64_t, std::less<>>& totals) const {
    const std::lock_guard lock{insert_mutex_};
    for (const auto& [name, counter] : counters_) {
        totals[name] += counter.get();
    }
}

ListenerTotals sum_listener(std::string name,
                            const std::vector<const ListenerCounters*>& per_worker,
                            std::map<std::string, std::uint64_t, std::less<>>& served) {
    ListenerTotals t;
    t.name = std::move(name);
    std::uint64_t started = 0;
    std::uint64_t ended = 0;
    for (const ListenerCounters* c : per_worker) {
        // Ended before started: a session that ends between the two reads is then counted
        // as ended and still open, never as open and not yet started (the gauge stays >= 0).
        for (std::size_t i = 0; i < kCloseReasons; ++i) {
            const std::uint64_t n = c->sessions_ended.at(i).get();
            t.sessions_ended.at(i) += n;
            ended += n;
        }
        started += c->sessions_started.get();
        for (std::size_t r = 0; r < kHandshakeResults; ++r) {
            for (std::size_t v = 0; v < kTlsVersionLabels.size(); ++v) {
                t.handshakes.at(r).at(v) += c->handshakes.at(r).at(v).get();
            }
        }
        t.resumed_handshakes += c->resumed_handshakes.get();
        t.starttls += c->starttls.get();
        t.starttls_discarded_bytes += c->starttls_discarded_bytes.get();
        t.sni_rejected += c->sni_rejected.get();
        for (std::size_t i = 0; i < kCountedLimits.size(); ++i) {
            t.limit_rejected.at(i) += c->limit_rejected.at(i).get();
        }
        c->served.sum_into(served);
    }
    t.sessions_active = started > ended ? started - ended : 0;
    return t;
}

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string render(const Scrape& scrape) {
    Writer w;
    render_sessions(w, scrape.listeners);
    render_tls(w, scrape.listeners);
    render_limits(w, scrape.listeners);
    render_served(w, scrape);
    render_certificates(w, scrape);
    render_backends(w, scrape);
    render_process(w, scrape);
    return w.take();
}

}  // namespace postern::proxy
