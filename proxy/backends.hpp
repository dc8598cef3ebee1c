#pragma once
// The process's backends, built once by run() before any worker starts and shared by all of
// them: for each [[backend]] some listener uses (as its default or through a route), how to
// connect to it (a BackendConnector: the resolved address list, or an exec program) and, when
// an SMTP STARTTLS listener uses it as its default, the learner of its EHLO extensions
// (proxy/backend_ehlo.hpp). Names are resolved here, once, so no session waits on a resolver.

#include "conf/config.hpp"
#include "proxy/backend_connector.hpp"
#include "proxy/backend_ehlo.hpp"
#include "proxy/privileged_helper.hpp"

#include <memory>
#include <string>
#include <unordered_map>

namespace postern::proxy {

struct Backend {
    const conf::BackendSpec* spec = nullptr;  // in the Config run() keeps for the process
    std::shared_ptr<const BackendConnector> connector;
    std::unique_ptr<BackendEhlo> ehlo;
};
using Backends = std::unordered_map<std::string, Backend>;

// False with `error` set when a backend cannot be resolved or started. `helper`: the privileged
// helper, when postern will run as server.user; it starts the exec programs that run as
// another user.
[[nodiscard]] bool make_backends(const conf::Config& config, PrivilegedHelper* helper,
                                 Backends& out, std::string& error);
// Starts the EHLO learners on `base` (the main loop), whose reaper looks after the program an
// exec backend runs for them.
void start_ehlos(Backends& backends, event_base* base, ChildReaper& children);

}  // namespace postern::proxy
