// The session's one report: the `session end` line (README "Logs"), written by
// Session::finish() in proxy/session.cpp. Its fields go to log_fields() one by one: the text
// format joins them as key=value, the JSON format makes each its own key.

#include "proxy/log.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

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
    const bool tls = tls_established();
    std::vector<LogField> fields;
    fields.reserve(16);
    fields.push_back({"client", client_address_});
    if (!via_.empty()) {
        fields.push_back({"via", via_});
    }
    fields.push_back({"listener", listener_.name});
    fields.push_back({"protocol", std::string{conf::to_string(listener_.spec.protocol)}});
    fields.push_back({"sni", handshake_.sni.empty() ? "-" : sanitize(handshake_.sni)});
    fields.push_back(
        {"cert", handshake_.cert != nullptr ? handshake_.cert->primary_name() : std::string{"-"}});
    fields.push_back({"tls", tls ? tls_version_ : "-"});
    fields.push_back({"cipher", tls ? cipher_ : "-"});
    fields.push_back({"backend", target_ != nullptr ? target_->name : listener_.spec.backend});
    if (!backend_served_.empty()) {
        fields.push_back({"backend_addr", backend_served_});
    }
    fields.push_back({"bytes_in", relay_.bytes_in()});
    fields.push_back({"bytes_out", relay_.bytes_out()});
    fields.push_back({"duration_ms", static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 0))});
    fields.push_back({"end", std::string{protocols::to_string(end_)}});
    if (!end_detail_.empty()) {
        fields.push_back({"detail", sanitize(end_detail_, 200, true), true});
    }
    log_fields(level, "session end", fields);
}

}  // namespace postern::proxy
