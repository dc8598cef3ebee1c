#include "proxy/backends.hpp"

#include "proxy/exec_connector.hpp"

#include <algorithm>
#include <vector>

namespace postern::proxy {
namespace {

std::shared_ptr<const BackendConnector> make_connector(const conf::BackendSpec& backend,
                                                       const conf::Config& config,
                                                       PrivilegedHelper* helper,
                                                       std::string& error) {
    if (backend.is_exec()) {  // no address: one program per session
        return ExecConnector::create(backend, config.server, helper, error);
    }
    std::vector<TcpConnector::Target> targets;
    for (const conf::Endpoint& endpoint : backend.addresses) {
        TcpConnector::Target target{{}, endpoint.to_string()};
        if (!resolve(endpoint, target.address, error)) {
            error.insert(0, "backend " + backend.name + ": ");
            return nullptr;
        }
        targets.push_back(std::move(target));
    }
    return std::make_shared<TcpConnector>(backend.name, std::move(targets), backend.connect_timeout,
                                          backend.send_proxy);
}

}  // namespace

bool make_backends(const conf::Config& config, PrivilegedHelper* helper, Backends& out,
                   std::string& error) {
    for (const conf::ListenerSpec& listener : config.listeners) {
        std::vector<const std::string*> names{&listener.backend};
        for (const conf::Route& route : listener.routes) {
            names.push_back(&route.backend);
        }
        for (const std::string* name : names) {
            const conf::BackendSpec* backend = config.find_backend(*name);
            if (backend == nullptr) {
                error = "listener " + listener.listen.to_string() + ": no backend named " + *name;
                return false;
            }
            Backend& entry = out[backend->name];
            if (entry.connector) {
                continue;
            }
            entry.spec = backend;
            entry.connector = make_connector(*backend, config, helper, error);
            if (!entry.connector) {
                return false;
            }
        }
        // Postern's own EHLO reply before TLS (and so before any route) offers what the
        // listener's default backend offers.
        if (listener.protocol == conf::Protocol::Smtp && listener.tls == conf::TlsMode::StartTls) {
            Backend& entry = out[listener.backend];
            if (!entry.ehlo) {
                entry.ehlo = std::make_unique<BackendEhlo>(entry.spec->name, entry.connector,
                                                           config.server.hostname);
            }
        }
    }
    return true;
}

void start_ehlos(Backends& backends, event_base* base, ChildReaper& children) {
    for (auto& [name, backend] : backends) {
        if (backend.ehlo) {
            backend.ehlo->start(base, children);
        }
    }
}

}  // namespace postern::proxy
