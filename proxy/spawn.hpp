#pragma once
// Starting one program for an exec backend (proxy/exec_connector.hpp) the way glibc's
// posix_spawn does it, plus the one thing posix_spawn cannot do: run it as another user.
//
// The child is made with clone(CLONE_VM | CLONE_VFORK): it borrows the parent's memory and the
// parent thread sleeps until the child has called execve() or exited, so nothing is copied
// however large postern is, and an exec failure is written straight into the parent's memory.
// Until execve() the child only makes system calls: no allocation, no lock. The uid and gid
// change through raw syscalls, because glibc's setuid()/setgid() would ask every thread of the
// (shared) process to change too. Before the child runs, the parent thread blocks every signal
// (glibc's own included), so no handler of postern's can run on the borrowed memory; the child
// resets every disposition to the default (SIG_IGN too: postern ignores SIGPIPE, its programs
// must not) and only then empties its mask.
//
// The child gets: fd 0 and fd 1 = `stdio`, fd 2 = `stderr_fd`, nothing else (close_range, as
// well as CLOEXEC everywhere: a descriptor another thread opens meanwhile must not leak into
// it); the given environment only; "/" as its working directory (postern's own is wherever it
// was started, and a child relying on it would work by accident; tcpserver keeps it, qmail and
// Courier chdir themselves anyway); postern's umask, process group and session (a ^C on
// postern's terminal reaches its children too). With gid set, its groups are exactly that gid
// (setgroups); with uid set, its real, effective and saved uid are that uid.

#include "proxy/event.hpp"

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace postern::proxy {

struct SpawnRequest {
    char* const* argv = nullptr;  // null-terminated; argv[0] is the program's absolute path
    char* const* envp = nullptr;  // null-terminated
    int stdio = -1;               // becomes fds 0 and 1 (blocking, as UCSPI programs expect)
    int stderr_fd = -1;           // becomes fd 2
    std::optional<uid_t> uid;     // unset: postern's own
    std::optional<gid_t> gid;     // unset: postern's own groups
};

// The process a child was spawned by when that is not postern's main process (the privileged
// helper, for a program that runs as another user): only it may signal the child, and it reaps
// it.
class ProcessParent {
public:
    virtual void signal(pid_t pid, int number) = 0;

protected:
    ProcessParent() = default;
    ~ProcessParent() = default;
    ProcessParent(const ProcessParent&) = default;
    ProcessParent& operator=(const ProcessParent&) = default;
    ProcessParent(ProcessParent&&) = default;
    ProcessParent& operator=(ProcessParent&&) = default;
};

struct Spawned {
    pid_t pid = -1;
    UniqueFd pidfd;                   // readable once the child has ended (CLOEXEC)
    ProcessParent* parent = nullptr;  // null: this process's own child
};

// execve()'s form of `strings`: pointers into them, then a null. Valid while `strings` is left
// alone.
[[nodiscard]] std::vector<char*> c_strings(std::vector<std::string>& strings);

// Runs the program; false with `error` ("exec /usr/bin/x: Permission denied",
// "exec /usr/bin/x: setgroups: Operation not permitted") when it could not be started, the
// failed child already reaped.
[[nodiscard]] bool spawn(const SpawnRequest& request, Spawned& out, std::string& error);

}  // namespace postern::proxy
