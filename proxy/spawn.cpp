#include "proxy/spawn.hpp"

#include "proxy/log.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

// The 32-bit ABIs (i386, armhf) keep 16-bit ids in the old calls; their *32 calls take whole
// ids. 64-bit ABIs have only the whole-id calls, under the plain names.
#ifdef SYS_setresuid32
constexpr long kSetgroups = SYS_setgroups32;
constexpr long kSetresgid = SYS_setresgid32;
constexpr long kSetresuid = SYS_setresuid32;
#else
constexpr long kSetgroups = SYS_setgroups;
constexpr long kSetresgid = SYS_setresgid;
constexpr long kSetresuid = SYS_setresuid;
#endif

// The child's stack: it makes a handful of system calls (glibc's posix_spawn takes 32 KiB
// plus the argument sizes; sanitizer builds want more). Touched pages only cost memory.
constexpr std::size_t kStackSize = std::size_t{256} * 1024;

// The kernel's signal set is 64 bits (_NSIG / 8 bytes), glibc's sigset_t far larger.
constexpr std::size_t kKernelSigsetSize = _NSIG / 8;

// Shared with the child (CLONE_VM): what it needs, prepared by the parent, and what failed.
struct ChildArgs {
    const SpawnRequest* request = nullptr;
    int max_fd = 0;  // close_range() missing (Linux < 5.9): close one by one up to here
    const char* failed_step = nullptr;
    int error = 0;
};

[[noreturn]] void child_failed(ChildArgs& args, const char* step) noexcept {
    args.failed_step = step;
    args.error = errno;
    _exit(127);
}

// Runs in the child, on its own stack, in the parent's memory: system calls only.
int child_main(void* arg) noexcept {
    auto& args = *static_cast<ChildArgs*>(arg);
    const SpawnRequest& request = *args.request;
    // Every disposition back to the default before the mask opens: a pending signal must not
    // run one of postern's handlers here. SIGKILL, SIGSTOP and glibc's own refuse (EINVAL);
    // their handlers (glibc's) end with execve().
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; ++sig) {
        (void)::sigaction(sig, &dfl, nullptr);
    }
    if (::dup2(request.stdio, STDIN_FILENO) < 0 || ::dup2(request.stdio, STDOUT_FILENO) < 0 ||
        ::dup2(request.stderr_fd, STDERR_FILENO) < 0) {
        child_failed(args, "dup2");
    }
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
        for (int fd = 3; fd < args.max_fd; ++fd) {
            (void)::close(fd);
        }
    }
    // After server.user's drop, exec_user may name postern's own user (the loader accepts no
    // other): nothing to change then, and setgroups is root's alone.
    const bool already = ::geteuid() != 0 && (!request.uid || *request.uid == ::geteuid()) &&
                         (!request.gid || *request.gid == ::getegid());
    if (request.gid && !already) {
        const gid_t gid = *request.gid;
        if (::syscall(kSetgroups, 1, &gid) != 0) {
            child_failed(args, "setgroups");
        }
        if (::syscall(kSetresgid, gid, gid, gid) != 0) {
            child_failed(args, "setgid");
        }
    }
    if (request.uid && !already) {
        const uid_t uid = *request.uid;
        if (::syscall(kSetresuid, uid, uid, uid) != 0) {
            child_failed(args, "setuid");
        }
    }
    if (::chdir("/") != 0) {
        child_failed(args, "chdir /");
    }
    sigset_t none;
    std::memset(&none, 0, sizeof(none));
    if (::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, kKernelSigsetSize) != 0) {
        child_failed(args, "sigprocmask");
    }
    ::execve(request.argv[0], request.argv, request.envp);
    child_failed(args, nullptr);
}

struct Stack {
    void* base = MAP_FAILED;
    ~Stack() {
        if (base != MAP_FAILED) {
            ::munmap(base, kStackSize);
        }
    }
    Stack() = default;
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;
    Stack(Stack&&) = delete;
    Stack& operator=(Stack&&) = delete;
};

void reap_now(pid_t pid) noexcept {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

int open_fd_limit() noexcept {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
        return 1 << 20;
    }
    return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, rlim_t{1} << 20));
}

}  // namespace

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    pointers.reserve(strings.size() + 1);
    for (std::string& text : strings) {
        pointers.push_back(text.data());
    }
    pointers.push_back(nullptr);
    return pointers;
}

bool spawn(const SpawnRequest& request, Spawned& out, std::string& error) {
    const std::string program = request.argv[0];
    Stack stack;
    stack.base = ::mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack.base == MAP_FAILED) {
        error = "exec " + program + ": stack: " + errno_text(errno);
        return false;
    }
    ChildArgs args{.request = &request, .max_fd = open_fd_limit()};
    // Every signal blocked for the child's start (glibc's sigfillset() would leave out its
    // own two, and so would pthread_sigmask()): the child inherits the mask.
    sigset_t all;
    sigset_t previous;
    std::memset(&all, 0xff, sizeof(all));
    std::memset(&previous, 0, sizeof(previous));
    (void)::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &previous, kKernelSigsetSize);
    // The stack grows down on every architecture postern builds for.
    char* top = static_cast<char*>(stack.base) + kStackSize;
    const pid_t pid = ::clone(&child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    const int clone_errno = errno;
    (void)::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &previous, nullptr, kKernelSigsetSize);
    if (pid < 0) {
        error = "exec " + program + ": clone: " + errno_text(clone_errno);
        return false;
    }
    if (args.error != 0) {  // the child wrote it before it exited; it is a zombie now
        reap_now(pid);
        error = "exec " + program + ": ";
        if (args.failed_step != nullptr) {
            error.append(args.failed_step).append(": ");
        }
        error += errno_text(args.error);
        return false;
    }
    // glibc 2.36's <sys/pidfd.h> declares its functions without C linkage: the syscall.
    UniqueFd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U))};
    if (pidfd.get() < 0) {
        const int err = errno;
        (void)::kill(pid, SIGKILL);
        reap_now(pid);
        error = "exec " + program + ": pidfd_open: " + errno_text(err);
        return false;
    }
    out.pid = pid;
    out.pidfd = std::move(pidfd);
    return true;
}

}  // namespace postern::proxy
