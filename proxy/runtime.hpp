#pragma once
// `postern run`: loads the certificates, binds the listeners, and runs the event loop until
// SIGTERM or SIGINT. Owns the worker and the signal events; the only process-wide state is
// what the kernel keeps for signals.

#include "conf/config.hpp"
#include "conf/file_snapshot.hpp"

#include <memory>
#include <string>
#include <vector>

namespace postern::proxy {

// `config` as loaded from `files` (conf::take_file_snapshot), which the first certificate store
// is built from. `arguments` (argv[1..]) start the process that replaces this one on SIGUSR2.
// Returns the process exit code: 0 after a clean stop, 1 when startup failed (logged).
[[nodiscard]] int run(const conf::Config& config, std::shared_ptr<const conf::FileSnapshot> files,
                      std::vector<std::string> arguments);

// How many workers server.workers asks for: as written, or one per CPU core for 0.
[[nodiscard]] unsigned worker_count(unsigned configured);

}  // namespace postern::proxy
