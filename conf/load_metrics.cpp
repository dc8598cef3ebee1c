// [metrics]: the address of the Prometheus and health endpoint (proxy/metrics_endpoint.hpp).
// Read after the listeners, so an address one of them binds is refused here, naming it.

#include "conf/loader.hpp"

#include <string>

namespace postern::conf::detail {

void Loader::read_metrics(TableReader& root) {
    const toml::table* table = root.table("metrics");
    if (table == nullptr) {
        return;
    }
    TableReader metrics{*table, "metrics", errors_};
    metrics.reject_unknown_keys({"listen"});
    auto listen = metrics.endpoint("listen", Need::Optional);
    if (!listen) {
        return;
    }
    const Source at = metrics.at("listen");
    const std::string claim = lower_ascii(listen->to_string());
    const auto [it, fresh] = listen_owners_.try_emplace(claim, metrics.key_path("listen"), at);
    if (!fresh) {
        metrics.error("listen", at,
                      "listen address " + listen->to_string() + " is already used by " +
                          it->second.first + " on line " + std::to_string(it->second.second.line));
        return;
    }
    check_overlap(metrics, *listen, at);
    config_.metrics.listen = std::move(*listen);
    config_.metrics.listen_at = at;
}

}  // namespace postern::conf::detail
