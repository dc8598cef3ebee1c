#pragma once
// server.user: `postern run` started as root becomes that user once its listeners are bound,
// before any worker thread starts, and checks that it worked: real, effective and saved ids
// all the user's, no supplementary group but the user's own, and no capability left in the
// effective, permitted, inheritable or ambient sets. It also stops being dumpable, so another
// process of the same user (nobody is shared) cannot ptrace it and read the keys in memory.

#include "conf/config.hpp"
#include "proxy/privileged_helper.hpp"

#include <memory>
#include <string>
#include <vector>

namespace postern::proxy {

// True when this process runs with root's effective uid.
[[nodiscard]] bool running_as_root() noexcept;

// Becomes server.user (uid, gid as the loader resolved them, supplementary groups from the
// group database). False, with what failed, when any step or check does not hold: the caller
// must then stop, never go on as root.
[[nodiscard]] bool drop_privileges(const conf::ServerSettings& server, std::string& error);

// `postern run`'s two steps. First, before any thread exists: with server.user set and root's
// uid, the privileged helper is forked (into `helper`); as root without server.user a warning
// is logged. False (logged) when postern must stop.
// `arguments` (argv[1..]) are what the helper starts postern with again on SIGUSR2.
[[nodiscard]] bool start_privilege_separation(const conf::Config& config,
                                              const std::vector<std::string>& arguments,
                                              std::unique_ptr<PrivilegedHelper>& helper);
// Then, once every listener is bound and before any thread starts: with a helper, become
// server.user and log it. False (logged) when postern must stop.
[[nodiscard]] bool finish_privilege_separation(const conf::Config& config,
                                               const PrivilegedHelper* helper);

// The capability sets of this process as /proc/self/status shows them: "CapEff 0 CapPrm 0 ...";
// empty when every set is 0.
[[nodiscard]] std::string capabilities_held();

}  // namespace postern::proxy
