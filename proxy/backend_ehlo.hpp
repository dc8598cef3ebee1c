#pragma once
// Learns which EHLO extensions an SMTP backend offers, so that postern's own EHLO reply on a
// STARTTLS listener (written before TLS, before any backend is connected for that client)
// advertises what the backend really supports rather than a hard-coded list. One probe per
// SMTP backend: connect, read the greeting, EHLO, QUIT; again every few minutes so an upgraded
// backend is picked up. Until the first answer the list is empty (only STARTTLS is offered).
// One per backend for the whole process: it runs on the main loop (worker 0's) and publishes
// each answer as an immutable snapshot that sessions on every worker thread read once, at
// accept, under a mutex. It connects through the backend's own connector, so it reaches the
// backend as sessions do (failover, a PROXY header with no client: v2 LOCAL, v1 naming its
// own connection's endpoints).

#include "protocols/smtp_ehlo_probe.hpp"
#include "proxy/backend_connector.hpp"
#include "proxy/event.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace postern::proxy {

using Extensions = std::shared_ptr<const std::vector<std::string>>;

class BackendEhlo {
public:
    BackendEhlo(std::string backend_name, std::shared_ptr<const BackendConnector> connector,
                std::string hostname);
    BackendEhlo(const BackendEhlo&) = delete;
    BackendEhlo& operator=(const BackendEhlo&) = delete;
    BackendEhlo(BackendEhlo&&) = delete;
    BackendEhlo& operator=(BackendEhlo&&) = delete;
    ~BackendEhlo() = default;

    // Probes now, then every kRefresh, on `base` (which, like `children`, must outlive this
    // object).
    void start(event_base* base, ChildReaper& children);
    // The latest answer (any thread).
    [[nodiscard]] Extensions extensions() const;

    // libevent entry points
    void on_data();
    void on_event(short what);
    void on_timer();
    void on_attempt(short what);
    void fail_internal(const char* what);

private:
    void on_read();
    void finish(const char* failure);

    event_base* base_ = nullptr;
    ChildReaper* children_ = nullptr;
    std::unique_ptr<ChildProcess> child_;  // an exec backend's program, for one probe
    std::string backend_name_;
    std::shared_ptr<const BackendConnector> connector_;
    std::string hostname_;
    std::unique_ptr<BackendAttempt> attempt_;  // while connecting
    BevPtr bev_;
    EventPtr timer_;
    protocols::EhloProbe probe_;  // the dialogue, bounded while reading
    Extensions extensions_ = std::make_shared<const std::vector<std::string>>();  // loop's copy
    mutable std::mutex published_mutex_;
    Extensions published_ = extensions_;  // guarded by published_mutex_
    bool quitting_ = false;  // QUIT sent: the backend closing now is the end, not a failure
    bool warned_ = false;
};

}  // namespace postern::proxy
