#pragma once
// Certificate reload without dropping a connection. On SIGHUP, and by itself when a watched
// certificate file or folder changes (inotify on the folders holding them, so certbot's
// symlink swaps in live/ and Kubernetes' atomic "..data" swap are seen; debounced), it re-reads
// the config file and builds a whole new CertStore on a thread of its own, off every event
// loop. With a privileged helper (server.user), the helper reads the files and watches them,
// and this process only asks it for a snapshot and hears its "changed". Only a store that loaded
// completely is published; anything broken leaves the previous store serving in full, with the
// errors logged (file named) and counted. A certificate that keeps its names but not its public
// key is warned about (tls::key_changes): its DANE TLSA record is stale. A daily timer logs
// certificates near or past expiry.
// tls.ticket_keys_file is reloaded with them, by the same rule: a file that does not load
// fails the reload, and the previous keys stay in use.

#include "conf/config.hpp"
#include "conf/errors.hpp"
#include "proxy/event.hpp"
#include "proxy/folder_watch.hpp"
#include "proxy/privileged_helper.hpp"
#include "proxy/service_manager.hpp"
#include "tls/cert_source.hpp"
#include "tls/certificate_report.hpp"
#include "tls/ticket_keys.hpp"

#include <atomic>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace postern::proxy {

class Reloader {
public:
    // `base` is the main loop; libevent's thread support must be on (evthread_use_pthreads).
    // `helper`, when not null, reads and watches the files instead of this process; it must
    // outlive the Reloader.
    Reloader(event_base* base, conf::Config config, std::shared_ptr<tls::CertSource> source,
             PrivilegedHelper* helper = nullptr);
    Reloader(const Reloader&) = delete;
    Reloader& operator=(const Reloader&) = delete;
    Reloader(Reloader&&) = delete;
    Reloader& operator=(Reloader&&) = delete;
    ~Reloader();

    // Starts watching; false (logged) if inotify is unavailable, in which case SIGHUP still works.
    bool start();
    // Each rebuild is announced to `manager` (RELOADING=1, then READY=1); it outlives us.
    void report_to(ServiceManager& manager) noexcept { manager_ = &manager; }
    // The session-ticket keys to reload from tls.ticket_keys_file with each rebuild.
    void reload_ticket_keys(std::shared_ptr<tls::TicketKeys> keys) noexcept {
        ticket_keys_ = std::move(keys);
    }
    void request(const char* why);

    // For the metrics (any thread): reloads that published a store and that failed, and when the
    // store now served was loaded (the startup load counts).
    struct Counts {
        std::uint64_t succeeded = 0;
        std::uint64_t failed = 0;
        std::time_t last_success = 0;
    };
    [[nodiscard]] Counts counts() const {
        const std::lock_guard lock(counts_mutex_);
        return counts_;
    }

    // libevent entry points (proxy/trampoline.hpp)
    void on_signal();  // SIGHUP
    void on_inotify();
    void on_helper();
    void on_debounced();
    void on_built();
    void on_daily();
    void fail_internal(const char* what);

private:
    struct Result {
        std::optional<conf::Config> config;
        std::shared_ptr<const tls::CertStore> store;
        std::shared_ptr<const conf::FileSnapshot> files;  // what the store was built from
        std::vector<conf::ConfigError> errors;
        std::vector<tls::KeyChange> key_changes;  // against the store serving when it was built
        std::string why;
    };

    void build_async(std::string why);
    bool load_ticket_keys(Result& result);  // false: errors added, previous keys kept
    void rewatch();
    void log_expiry() const;

    event_base* base_;
    conf::Config config_;
    std::shared_ptr<tls::CertSource> source_;
    PrivilegedHelper* helper_;
    FolderWatch watch_;       // unused with a helper
    EventPtr inotify_event_;  // or the helper's events
    EventPtr debounce_;
    EventPtr built_;
    EventPtr daily_;
    std::string pending_why_;  // a change seen while a build was running: build again after
    bool building_ = false;
    std::jthread builder_;
    std::mutex result_mutex_;
    std::optional<Result> result_;     // handed from the builder thread to the loop
    mutable std::mutex counts_mutex_;  // the metrics endpoint reads them from its thread
    Counts counts_{.last_success = std::time(nullptr)};
    ServiceManager* manager_ = nullptr;
    std::shared_ptr<tls::TicketKeys> ticket_keys_;
};

}  // namespace postern::proxy
