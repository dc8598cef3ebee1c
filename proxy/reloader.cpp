#include "proxy/reloader.hpp"

#include "conf/load.hpp"
#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"
#include "tls/cert_checks.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace postern::proxy {
namespace {

// certbot writes several files and swaps several links per renewal: wait for quiet.
constexpr timeval kDebounce{1, 0};
constexpr timeval kDaily{time_t{24} * 3600, 0};

// The parts of a reloaded config that a reload does not take over, as "[server], [metrics]";
// empty when none changed. Any key counts, not just how many tables there are: an admin who
// dropped a balancer from trusted_proxies must be told it is still trusted until a restart.
std::string restart_only_changes(const conf::Config& now, const conf::Config& running) {
    std::string out;
    const auto add = [&out](bool changed, std::string_view what) {
        if (changed) {
            out += out.empty() ? "" : ", ";
            out += what;
        }
    };
    add(now.server != running.server, "[server]");
    add(now.tls.min_version != running.tls.min_version ||
            now.tls.strict_sni != running.tls.strict_sni,
        "[tls] min_version or strict_sni");
    add(now.listeners != running.listeners, "[[listener]]");
    add(now.backends != running.backends, "[[backend]]");
    add(now.metrics != running.metrics, "[metrics]");
    return out;
}

}  // namespace

Reloader::Reloader(event_base* base, conf::Config config, std::shared_ptr<tls::CertSource> source,
                   PrivilegedHelper* helper)
    : base_(base),
      config_(std::move(config)),
      source_(std::move(source)),
      helper_(helper),
      debounce_(event_new(base, -1, 0, &event_cb<Reloader, &Reloader::on_debounced>, this)),
      built_(event_new(base, -1, 0, &event_cb<Reloader, &Reloader::on_built>, this)),
      daily_(event_new(base, -1, 0, &event_cb<Reloader, &Reloader::on_daily>, this)) {}

Reloader::~Reloader() {
    if (builder_.joinable()) {
        builder_.join();  // a build in flight finishes; its result is dropped with us
    }
}

bool Reloader::start() {
    evtimer_add(daily_.get(), &kDaily);
    if (helper_ != nullptr) {
        inotify_event_.reset(event_new(base_, helper_->events_fd(), EV_READ | EV_PERSIST,
                                       &event_cb<Reloader, &Reloader::on_helper>, this));
        event_add(inotify_event_.get(), nullptr);
        return true;
    }
    if (std::string error; !watch_.open(error)) {
        spdlog::warn("cannot watch certificate files ({}); reload with SIGHUP", error);
        return false;
    }
    inotify_event_.reset(event_new(base_, watch_.fd(), EV_READ | EV_PERSIST,
                                   &event_cb<Reloader, &Reloader::on_inotify>, this));
    event_add(inotify_event_.get(), nullptr);
    rewatch();
    return true;
}

void Reloader::rewatch() {
    if (helper_ == nullptr) {
        watch_.watch(config_);
    }
}

void Reloader::on_inotify() {
    if (watch_.drain()) {
        evtimer_add(debounce_.get(), &kDebounce);  // re-arming pushes the deadline back
    }
}

void Reloader::on_helper() {
    switch (helper_->read_events()) {
        case PrivilegedHelper::Events::Changed:
            evtimer_add(debounce_.get(), &kDebounce);
            break;
        case PrivilegedHelper::Events::Gone:
            spdlog::error(
                "the privileged helper (pid {}) is gone: certificate changes are no longer "
                "seen, and reloads fail until postern is restarted",
                helper_->pid());
            inotify_event_.reset();
            break;
        case PrivilegedHelper::Events::None:
            break;
    }
}

void Reloader::on_debounced() {
    request("a certificate file changed");
}

void Reloader::request(const char* why) {
    if (building_) {
        pending_why_ = why;
        return;
    }
    build_async(why);
}

void Reloader::build_async(std::string why) {
    building_ = true;
    if (manager_ != nullptr) {
        manager_->reloading(why);
    }
    if (builder_.joinable()) {
        builder_.join();
    }
    builder_ = std::jthread([this, file = config_.file, why = std::move(why)] {
        Result result;
        result.why = why;
        try {
            // One way to the files either way: a snapshot, taken here or by the helper.
            std::string error;
            const auto files =
                helper_ != nullptr ? helper_->snapshot(error) : conf::take_file_snapshot(file);
            if (!files) {
                throw std::runtime_error(error);
            }
            auto loaded = conf::load_config(*files);
            if (!loaded.config) {
                result.errors = std::move(loaded.errors);
            } else {
                auto built = tls::CertStore::build(*loaded.config, *files);
                // Only this thread's results are published, one build at a time: current()
                // is the store this one replaces.
                if (built.store) {
                    result.key_changes = tls::key_changes(*source_->current(), *built.store);
                }
                result.store = std::move(built.store);
                result.errors = std::move(built.errors);
                result.config = std::move(loaded.config);
                result.files = files;
            }
        } catch (const std::exception& e) {
            conf::ConfigError error;
            error.file = file.string();
            error.message = e.what();
            result.errors.push_back(std::move(error));
        }
        {
            const std::lock_guard lock(result_mutex_);
            result_ = std::move(result);
        }
        event_active(built_.get(), 0, 0);  // wakes the main loop (libevent thread support)
    });
}

void Reloader::on_built() {
    std::optional<Result> result;
    {
        const std::lock_guard lock(result_mutex_);
        result.swap(result_);
    }
    building_ = false;
    if (!result) {
        return;
    }
    std::string failure;  // the first error, for the service manager's STATUS=
    if (result->store && result->config && !load_ticket_keys(*result)) {
        result->store.reset();  // all or nothing: the previous certificates stay too
    }
    if (result->store && result->config) {
        const std::string unapplied = restart_only_changes(*result->config, config_);
        // Only what the store is built from is taken over; listeners, backends and TLS policy
        // stay as bound at startup.
        config_.certificates = result->config->certificates;
        config_.tls.certificates_dir = result->config->tls.certificates_dir;
        config_.tls.expiry_warning_days = result->config->tls.expiry_warning_days;
        config_.tls.ticket_keys_file = result->config->tls.ticket_keys_file;
        const std::size_t count = result->store->certificates().size();
        source_->publish(result->store);
        // Before the "reloaded" line, so that whoever waits for that line has seen these.
        for (const auto& change : result->key_changes) {
            spdlog::warn("{}", tls::describe(change));
        }
        {
            const std::lock_guard lock(counts_mutex_);
            ++counts_.succeeded;
            counts_.last_success = std::time(nullptr);
        }
        spdlog::info(
            "certificates reloaded ({}): {} certificate(s) now served to new "
            "connections",
            result->why, count);
        for (const auto& finding :
             tls::inspect(*result->store, config_, std::time(nullptr), result->files.get())) {
            spdlog::warn("{}: {}", finding.file, finding.message);
        }
        if (!unapplied.empty()) {
            spdlog::warn("{}: changes to {} take effect after a restart", config_.file.string(),
                         unapplied);
        }
    } else {
        const std::uint64_t failures = [this] {
            const std::lock_guard lock(counts_mutex_);
            return ++counts_.failed;
        }();
        failure = result->errors.empty() ? std::string{"no certificate store"}
                                         : conf::format_error(result->errors.front());
        for (const auto& e : result->errors) {
            spdlog::error("certificate reload failed: {}", conf::format_error(e));
        }
        spdlog::error(
            "certificate reload ({}) failed ({} failure(s) so far); still serving the "
            "previous {} certificate(s){}",
            result->why, failures, source_->current()->certificates().size(),
            config_.tls.ticket_keys_file.empty() ? "" : " and session-ticket keys");
    }
    if (manager_ != nullptr) {
        manager_->reloaded(std::move(failure));
    }
    rewatch();
    if (!pending_why_.empty()) {
        build_async(std::exchange(pending_why_, {}));
    }
}

bool Reloader::load_ticket_keys(Result& result) {
    if (!ticket_keys_) {
        return true;
    }
    std::string error;
    if (!ticket_keys_->load(result.config->tls, *result.files, error)) {
        // The loader checked the file in this very snapshot: only a broken invariant gets here.
        conf::ConfigError e;
        e.file = config_.file.string();
        e.key = "tls.ticket_keys_file";
        e.message = error;
        result.errors.push_back(std::move(e));
        return false;
    }
    if (!result.config->tls.ticket_keys_file.empty()) {
        spdlog::info("session tickets reloaded: {}", ticket_keys_->describe());
    }
    return true;
}

void Reloader::on_signal() {
    request("SIGHUP");
}

void Reloader::fail_internal(const char* what) {
    spdlog::error("certificate reload: {}", what);
}

void Reloader::on_daily() {
    evtimer_add(daily_.get(), &kDaily);
    log_expiry();
}

void Reloader::log_expiry() const {
    for (const auto& finding : tls::inspect(*source_->current(), config_)) {
        spdlog::warn("{}: {}", finding.file, finding.message);
    }
}

}  // namespace postern::proxy
