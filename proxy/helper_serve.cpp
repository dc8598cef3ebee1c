#include "proxy/helper_serve.hpp"

#include "conf/load.hpp"
#include "proxy/exec_connector.hpp"
#include "proxy/folder_watch.hpp"
#include "proxy/helper_channel.hpp"
#include "proxy/log.hpp"
#include "proxy/replacement.hpp"
#include "proxy/spawn.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <exception>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

// The helper's descriptors after it tidied up: 0 and 1 on /dev/null, 2 the log, these two,
// then its signalfd and inotify descriptors.
constexpr int kRequestsFd = 3;
constexpr int kEventsFd = 4;

// A LISTEN_FDNAMES entry as systemd allows it: printable ASCII, no ':', at most 255 bytes.
bool valid_names(std::string_view names, std::size_t count) {
    std::size_t seen = 1;
    std::size_t length = 0;
    for (const char c : names) {
        if (c == ':') {
            ++seen;
            length = 0;
        } else if (c < 0x21 || c > 0x7e || ++length > 255) {
            return false;
        }
    }
    return seen == count;
}

bool listening(int fd) {
    int accepting = 0;
    socklen_t size = sizeof(accepting);
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) == 0 && accepting != 0;
}

bool pipe_end(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

class HelperServer {
public:
    explicit HelperServer(const HelperLaunch& launch) : launch_(launch) {}

    [[noreturn]] void serve() {
        if (std::string error; !watch_.open(error)) {
            spdlog::warn("cannot watch certificate files ({}); reload with SIGHUP", error);
        }
        sigset_t chld;
        ::sigemptyset(&chld);
        ::sigaddset(&chld, SIGCHLD);
        // One thread: sigprocmask is this process's mask.
        // NOLINTNEXTLINE(concurrency-mt-unsafe)
        if (::sigprocmask(SIG_BLOCK, &chld, nullptr) != 0) {
            fail("sigprocmask");
        }
        children_.reset(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
        if (children_.get() < 0) {
            fail("signalfd");
        }
        remember(*conf::take_file_snapshot(launch_.config_file));
        for (;;) {
            std::array<pollfd, 4> fds{{{kRequestsFd, POLLIN, 0},
                                       {kEventsFd, POLLIN, 0},  // only EOF ever comes this way
                                       {children_.get(), POLLIN, 0},
                                       {watch_.fd(), POLLIN, 0}}};
            if (::poll(fds.data(), watch_.fd() < 0 ? 3 : 4, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                fail("poll");
            }
            if (fds[2].revents != 0) {
                reap();
            }
            if (fds[0].revents != 0) {
                std::optional<Frame> request = read_frame(kRequestsFd);
                if (!request) {
                    ::_exit(0);  // the main process is gone
                }
                answer(*request);
            }
            if ((fds[1].revents & (POLLHUP | POLLERR | POLLIN)) != 0) {
                ::_exit(0);
            }
            if (fds[3].revents != 0 && watch_.drain()) {
                tell_changed();
            }
        }
    }

private:
    [[noreturn]] static void fail(const char* what) {
        spdlog::error("{}: {}", what, errno_text(errno));
        ::_exit(1);
    }

    static void reply(HelperMessage type, std::string_view payload = {},
                      std::span<const int> fds = {}) {
        if (!write_frame(kRequestsFd, type, payload, fds)) {
            ::_exit(0);  // the main process is gone
        }
    }

    // A full events socket means the main process has a "changed" it has not read yet: enough.
    static void tell_changed() {
        const std::string frame = encode_frame(HelperMessage::Changed);
        const ssize_t n =
            ::send(kEventsFd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0 && static_cast<std::size_t>(n) < frame.size()) {
            // Never seen for 5 bytes on a stream socketpair; finish it so the stream stays framed.
            (void)::send(kEventsFd, frame.data() + n, frame.size() - static_cast<std::size_t>(n),
                         MSG_NOSIGNAL);
        }
    }

    // What a config the helper read allows: its folders watched, its exec programs startable.
    void remember(const conf::FileSnapshot& files) {
        const conf::LoadResult loaded = conf::load_config(files);
        if (!loaded.config) {
            return;
        }
        watch_.watch(*loaded.config);
        for (const conf::BackendSpec& backend : loaded.config->backends) {
            if (backend.is_exec()) {
                conf::ExecSpec exec = with_server_ids(backend.exec, loaded.config->server);
                if (std::find(known_.begin(), known_.end(), exec) == known_.end()) {
                    known_.push_back(std::move(exec));
                }
            }
        }
    }

    void answer(Frame& request) {
        switch (request.type) {
            case HelperMessage::Snapshot:
                return snapshot();
            case HelperMessage::Spawn:
                return spawn(request);
            case HelperMessage::Signal:
                return signal(request);
            case HelperMessage::Replace:
                return replace(request);
            default:
                spdlog::error("unexpected request (type {}); stopping",
                              static_cast<int>(request.type));
                ::_exit(1);
        }
    }

    void snapshot() {
        const auto files = conf::take_file_snapshot(launch_.config_file);
        std::string wire = files->encode();
        reply(HelperMessage::Files, wire);
        conf::FileSnapshot::wipe(wire);
        remember(*files);
    }

    void spawn(const Frame& request) {
        const std::optional<SpawnOrder> order = decode_spawn(request.payload);
        std::string refusal = !order                    ? "a malformed request"
                              : request.fds.size() != 2 ? "a request without its two descriptors"
                                                        : refuse_spawn(*order, known_);
        if (!refusal.empty()) {
            spdlog::error("refused to start a program: {}", refusal);
            return reply(HelperMessage::Failed, "the privileged helper refused: " + refusal);
        }
        std::vector<std::string> env = program_environment(order->client_environment, order->exec);
        std::vector<std::string> args = order->exec.argv;
        const std::vector<char*> envp = c_strings(env);
        const std::vector<char*> argv = c_strings(args);
        Spawned spawned;
        std::string error;
        if (!proxy::spawn({.argv = argv.data(),
                           .envp = envp.data(),
                           .stdio = request.fds[0].get(),
                           .stderr_fd = request.fds[1].get(),
                           .uid = order->exec.uid,
                           .gid = order->exec.gid},
                          spawned, error)) {
            return reply(HelperMessage::Failed, error);
        }
        programs_.emplace(spawned.pid, args.front());
        const std::array<int, 1> pidfd{spawned.pidfd.get()};
        reply(HelperMessage::Spawned, std::to_string(spawned.pid), pidfd);
    }

    // Only a child of its own that it has not reaped: that pid cannot be anybody else's yet.
    void signal(const Frame& request) const {
        const std::optional<SignalOrder> order = decode_signal(request.payload);
        if (order && programs_.contains(order->pid)) {
            (void)::kill(order->pid, order->signal);
        }
    }

    void replace(const Frame& request) {
        const std::size_t sockets = request.fds.empty() ? 0 : request.fds.size() - 1;
        std::vector<int> fds;
        for (std::size_t i = 0; i < sockets; ++i) {
            fds.push_back(request.fds[i].get());
        }
        std::string error;
        if (sockets == 0 || !std::all_of(fds.begin(), fds.end(), listening) ||
            !pipe_end(request.fds.back().get()) || !valid_names(request.payload, sockets)) {
            error = "the privileged helper refused: not listening sockets and a ready pipe";
            spdlog::error("refused to start a replacement: {}", error);
            return reply(HelperMessage::Failed, error);
        }
        const pid_t pid = start_replacement(launch_.executable, launch_.arguments, fds,
                                            request.payload, request.fds.back().get(), error);
        if (pid < 0) {
            return reply(HelperMessage::Failed, error);
        }
        replacements_.emplace(pid, launch_.executable);
        reply(HelperMessage::Started, std::to_string(pid));
    }

    void reap() {
        signalfd_siginfo info{};
        while (::read(children_.get(), &info, sizeof(info)) > 0) {
        }
        int status = 0;
        pid_t pid = 0;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            if (const auto found = programs_.find(pid); found != programs_.end()) {
                // The worker logs its program's stderr; how it ended is worth a line when odd.
                log_end(found->second, pid, status, spdlog::level::info);
                programs_.erase(found);
            } else if (const auto replacement = replacements_.find(pid);
                       replacement != replacements_.end()) {
                log_end("replacement " + replacement->second, pid, status, spdlog::level::warn);
                replacements_.erase(replacement);
            }
        }
    }

    static void log_end(const std::string& what, pid_t pid, int status,
                        spdlog::level::level_enum level) {
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            spdlog::log(level, "{}[{}]: exited with status {}", what, pid, WEXITSTATUS(status));
        } else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM &&
                   WTERMSIG(status) != SIGKILL) {
            spdlog::log(level, "{}[{}]: ended by signal {}", what, pid, WTERMSIG(status));
        }
    }

    const HelperLaunch& launch_;
    FolderWatch watch_;
    UniqueFd children_;                      // signalfd: SIGCHLD
    std::vector<conf::ExecSpec> known_;      // every exec spec of every config read, with its ids
    std::map<pid_t, std::string> programs_;  // exec children not reaped yet -> program
    std::map<pid_t, std::string> replacements_;  // replacement processes not reaped yet
};

}  // namespace

void run_helper(int requests, int events, const HelperLaunch& launch, pid_t parent) {
    try {
        // SIGKILL: the helper ignores SIGTERM.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) {
            ::_exit(0);
        }
        (void)::prctl(PR_SET_NAME, "postern-helper");
        // Stopping, reloading and replacing are the main process's business: a terminal's ^C,
        // or a signal sent to every postern (`pkill -HUP postern`, systemctl kill without
        // --kill-whom=main) must not take the helper away from under it. It ends when the main
        // process does (EOF on its sockets, or the death signal above).
        for (const int number : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE}) {
            (void)std::signal(number, SIG_IGN);
        }
        const int high_requests = ::fcntl(requests, F_DUPFD_CLOEXEC, 64);
        const int high_events = ::fcntl(events, F_DUPFD_CLOEXEC, 64);
        const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (high_requests < 0 || high_events < 0 || null < 0 || ::dup2(null, 0) < 0 ||
            ::dup2(null, 1) < 0 || ::dup3(high_requests, kRequestsFd, O_CLOEXEC) < 0 ||
            ::dup3(high_events, kEventsFd, O_CLOEXEC) < 0 ||
            ::syscall(SYS_close_range, 5U, ~0U, 0U) != 0) {
            spdlog::error("cannot set up its descriptors: {}", errno_text(errno));
            ::_exit(1);
        }
        HelperServer server{launch};
        server.serve();
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
    } catch (...) {
        spdlog::error("unknown exception");
    }
    ::_exit(1);
}

}  // namespace postern::proxy
