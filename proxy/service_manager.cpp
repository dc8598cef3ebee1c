#include "proxy/service_manager.hpp"

#include "proxy/log.hpp"
#include "proxy/trampoline.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

constexpr timeval kStatusEvery{5, 0};
// A reload error names the config file, a certificate file and a reason: room for long paths,
// not for a whole PEM dump.
constexpr std::size_t kMaxFailure = 512;

std::string counted(std::size_t n, std::string_view one) {
    std::string out = std::to_string(n);
    out.append(" ").append(one);
    if (n != 1) {
        out += 's';
    }
    return out;
}

// A datagram of KEY=value lines: a newline inside a value would start a new assignment.
std::string one_line(std::string_view text, std::size_t max) {
    std::string out(text.substr(0, max));
    std::replace_if(
        out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    if (text.size() > max) {
        out += "...";
    }
    return out;
}

}  // namespace

std::string service_status(std::size_t sessions, std::size_t certificates,
                           std::string_view failure) {
    std::string out = counted(sessions, "session") + ", " + counted(certificates, "certificate");
    if (!failure.empty()) {
        out.append("; reload failed: ").append(one_line(failure, kMaxFailure));
    }
    return out;
}

ServiceManager::ServiceManager(const ClientLimits& limits, const tls::CertSource& certs)
    : limits_(limits), certs_(certs) {
    const char* socket = std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe): main
    active_ = socket != nullptr && *socket != '\0';
}

void ServiceManager::watch(event_base* base) {
    if (!active_) {
        return;
    }
    timer_.reset(event_new(base, -1, EV_PERSIST,
                           &event_cb<ServiceManager, &ServiceManager::on_timer>, this));
    if (!timer_ || event_add(timer_.get(), &kStatusEvery) != 0) {
        spdlog::warn("service manager: cannot start the STATUS timer; STATUS= changes with events");
    }
}

void ServiceManager::ready(bool replacing) {
    if (!active_) {
        return;
    }
    phase_.clear();
    last_status_ = current_status();
    // A replacement (proxy/replacement.hpp) is the service's main process from now on; systemd
    // takes that from a process other than the main one only with NotifyAccess=all.
    const std::string main_pid =
        replacing ? "MAINPID=" + std::to_string(::getpid()) + "\n" : std::string{};
    send(main_pid + "READY=1\nSTATUS=" + last_status_);
}

void ServiceManager::reloading(std::string_view why) {
    // A reload that starts or ends while postern drains must not take STOPPING=1 back.
    if (!active_ || stopping_) {
        return;
    }
    // Type=notify-reload: systemd takes the reload as begun only with a timestamp no older than
    // the SIGHUP it sent, on CLOCK_MONOTONIC, in microseconds.
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000U +
                      static_cast<std::uint64_t>(now.tv_nsec) / 1'000U;
    phase_ = "reloading certificates (" + one_line(why, kMaxFailure) + "); ";
    last_status_ = current_status();
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=" + last_status_);
}

void ServiceManager::reloaded(std::string failure) {
    failure_ = std::move(failure);
    if (!stopping_) {
        ready();
    }
}

void ServiceManager::stopping() {
    if (!active_) {
        return;
    }
    stopping_ = true;
    phase_ = "stopping; ";
    last_status_ = current_status();
    send("STOPPING=1\nSTATUS=" + last_status_);
}

void ServiceManager::status(std::string text) {
    if (!active_ || text == last_status_) {
        return;
    }
    last_status_ = std::move(text);
    send("STATUS=" + last_status_);
}

void ServiceManager::on_timer() {
    status(current_status());
}

void ServiceManager::fail_internal(const char* what) const {
    spdlog::error("service manager: {}", what);
}

std::string ServiceManager::current_status() const {
    return phase_ +
           service_status(limits_.sessions(), certs_.current()->certificates().size(), failure_);
}

void ServiceManager::send(const std::string& message) const {
    // unset_environment = 0: see the header. A manager that went away costs a debug line, not
    // the service.
    const int r = sd_notify(0, message.c_str());
    if (r < 0) {
        spdlog::debug("service manager: sd_notify failed: {}", errno_text(-r));
    }
}

}  // namespace postern::proxy
