// The session's one report: the `session end` line (README "Logs"), written by
// Session::finish() in proxy/session.cpp.

#include "proxy/log.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

namespace postern::proxy {

using protocols::CloseReason;

void Session::log_end() const {
    // The admin must act on internal errors and should notice a backend that refuses us.
    // Refusals over a limit have their own rate-limited line (proxy/client_limits.hpp).
    const auto level =
        end_ == CloseReason::OverLimit  ? spdlog::level::debug
        : end_ == CloseReason::Internal ? spdlog::level::err
        : end_ == CloseReason::BackendUnreachable || end_ == CloseReason::ForwardingRefused
            ? spdlog::level::warn
            : spdlog::level::info;
    if (!spdlog::should_log(level)) {
        return;  // at log_level = "warn" a session that ends normally costs no formatting
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
    const char* cert = handshake_.cert != nullptr ? handshake_.cert->primary_name().c_str() : "-";
    const std::string sni = handshake_.sni.empty() ? "-" : sanitize(handshake_.sni);
    spdlog::log(level,
                "session end client={}{}{} listener={} protocol={} sni={} cert={} tls={} cipher={} "
                "backend={}{}{} bytes_in={} bytes_out={} duration_ms={} end={}{}{}{}",
                client_address_, via_.empty() ? "" : " via=", via_, listener_.name,
                conf::to_string(listener_.spec.protocol), sni, cert,
                tls_established() ? tls_version_ : "-", tls_established() ? cipher_ : "-",
                target_ != nullptr ? target_->name : listener_.spec.backend,
                backend_served_.empty() ? "" : " backend_addr=", backend_served_, relay_.bytes_in(),
                relay_.bytes_out(), ms, protocols::to_string(end_),
                end_detail_.empty() ? "" : " detail=\"", sanitize(end_detail_, 200, true),
                end_detail_.empty() ? "" : "\"");
}

}  // namespace postern::proxy
