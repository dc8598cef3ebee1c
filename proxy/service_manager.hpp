#pragma once
// What postern tells its service manager (systemd's Type=notify and Type=notify-reload) through
// sd_notify(3) on $NOTIFY_SOCKET: READY=1 once every listener is bound and the certificates
// are loaded, RELOADING=1 with MONOTONIC_USEC when a certificate rebuild starts and READY=1
// when it ends (whatever its outcome: the previous certificates still serve; neither once
// stopping), STOPPING=1 on SIGTERM/SIGINT, and a one-line STATUS= ("12 sessions, 3 certificates")
// with each of these and, when it changed, every 5 s. Without NOTIFY_SOCKET every call does
// nothing.
//
// Main thread only. NOTIFY_SOCKET stays in the environment (systemd may ask again after a
// re-exec); exec backends' programs get an environment built from scratch (proxy/spawn.cpp),
// so neither it nor LISTEN_* reaches them.

#include "proxy/client_limits.hpp"
#include "proxy/event.hpp"
#include "tls/cert_source.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::proxy {

// STATUS= text: "1 session, 3 certificates", then "; reload failed: ..." when the last
// reload failed (`failure`, one line, cut to a readable length).
[[nodiscard]] std::string service_status(std::size_t sessions, std::size_t certificates,
                                         std::string_view failure);

class ServiceManager {
public:
    // Notifies when NOTIFY_SOCKET is set; the counts come from `limits` (sessions, process-wide
    // atomic) and `certs` (the store being served), both outliving this object.
    ServiceManager(const ClientLimits& limits, const tls::CertSource& certs);
    ServiceManager(const ServiceManager&) = delete;
    ServiceManager& operator=(const ServiceManager&) = delete;
    ServiceManager(ServiceManager&&) = delete;
    ServiceManager& operator=(ServiceManager&&) = delete;
    ~ServiceManager() = default;

    [[nodiscard]] bool active() const noexcept { return active_; }

    // Refreshes STATUS= every 5 s on `base` (the main loop), sending only a changed text.
    void watch(event_base* base);

    // READY=1; `replacing`: this process replaces another one (MAINPID= too).
    void ready(bool replacing = false);
    void reloading(std::string_view why);  // RELOADING=1, MONOTONIC_USEC=now
    // READY=1 after a rebuild; `failure` empty when it succeeded, else what went wrong.
    void reloaded(std::string failure);
    void stopping();  // STOPPING=1
    // From now on a replacement process speaks for the service: send nothing more.
    void hand_over() noexcept { active_ = false; }
    void status(std::string text);  // STATUS=, if the text changed

    // libevent entry points (proxy/trampoline.hpp)
    void on_timer();
    void fail_internal(const char* what) const;

private:
    [[nodiscard]] std::string current_status() const;
    void send(const std::string& message) const;

    const ClientLimits& limits_;
    const tls::CertSource& certs_;
    bool active_ = false;
    bool stopping_ = false;    // STOPPING=1 sent: no READY=1 or RELOADING=1 after it
    std::string phase_;        // "reloading certificates (SIGHUP); ", "stopping; " or empty
    std::string failure_;      // the last reload's error; cleared by a reload that works
    std::string last_status_;  // as last sent
    EventPtr timer_;
};

}  // namespace postern::proxy
