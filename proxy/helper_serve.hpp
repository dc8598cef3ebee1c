#pragma once
// The privileged helper's side (proxy/privileged_helper.hpp has the main process's): the
// process the helper's fork becomes, and its loop. One thread, blocking calls, poll() over its
// two sockets, its inotify descriptor and a signalfd for SIGCHLD (its children are exec
// programs run as another user and replacement processes; it reaps them and logs how they
// ended when that is worth a line).

#include "proxy/privileged_helper.hpp"

#include <sys/types.h>

namespace postern::proxy {

// In the child, straight after fork(): the parent had no thread, so its memory is consistent.
// Never returns; exits when the main process goes.
[[noreturn]] void run_helper(int requests, int events, const HelperLaunch& launch, pid_t parent);

}  // namespace postern::proxy
