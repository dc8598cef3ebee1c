#include "proxy/open_files.hpp"

#include <algorithm>
#include <sys/resource.h>

namespace postern::proxy {
namespace {

// 2 for a TCP backend; an exec backend's session also holds the program's pidfd and stderr.
constexpr std::size_t kFilesPerSession = 2;
constexpr std::size_t kFilesPerExecSession = 4;

std::string need_text(const OpenFiles& files, std::size_t sessions) {
    return std::to_string(files.needed(sessions)) + " open files (" +
           std::to_string(files.per_session) + " per session, " + std::to_string(files.listening) +
           " listening sockets, " + std::to_string(files.spare) + " spare)";
}

std::string fix_text(std::uint64_t needed) {
    const std::string n = std::to_string(needed);
    return "raise it to at least " + n + " (LimitNOFILE=" + n +
           " in postern's systemd unit, or `ulimit -n " + n + "` in the shell that starts it)";
}

}  // namespace

std::size_t OpenFiles::sessions_within(std::uint64_t limit) const noexcept {
    const std::uint64_t fixed = std::uint64_t{listening} + spare;
    if (limit <= fixed || per_session == 0) {
        return 0;
    }
    return static_cast<std::size_t>(
        std::min<std::uint64_t>((limit - fixed) / per_session, conf::kMaxMaxSessions));
}

OpenFiles open_files_for(const conf::Config& config, unsigned workers) noexcept {
    const bool exec = std::any_of(config.backends.begin(), config.backends.end(),
                                  [](const conf::BackendSpec& b) { return b.is_exec(); });
    return {.per_session = exec ? kFilesPerExecSession : kFilesPerSession,
            .listening = config.listeners.size() * workers,
            .spare = kSpareFiles + kSpareFilesPerWorker * workers};
}

std::uint64_t raise_open_files_limit() noexcept {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return 0;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            return raised.rlim_cur;
        }
    }
    return limit.rlim_cur;
}

std::uint64_t open_files_hard_limit() noexcept {
    rlimit limit{};
    return getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_max : 0;
}

SessionsFit fit_max_sessions(const conf::Config& config, unsigned workers, std::uint64_t limit) {
    const OpenFiles files = open_files_for(config, workers);
    const std::size_t wanted = config.server.max_sessions;
    if (files.needed(wanted) <= limit) {
        return {wanted, {}};
    }
    const std::size_t within = files.sessions_within(limit);
    const std::string limit_text = "the open-files limit is " + std::to_string(limit);
    if (config.server.max_sessions_set || within == 0) {
        return {
            0, (config.server.max_sessions_set ? "max_sessions = " : "the default max_sessions, ") +
                   std::to_string(wanted) + ", needs " + need_text(files, wanted) + ", but " +
                   limit_text + ": " + fix_text(files.needed(wanted)) +
                   (within == 0 ? "; not even one session fits"
                                : ", or lower max_sessions to at most " + std::to_string(within))};
    }
    return {within, "max_sessions is not set and its default, " + std::to_string(wanted) +
                        ", needs " + need_text(files, wanted) + ", but " + limit_text +
                        ": using max_sessions = " + std::to_string(within) + "; for the default, " +
                        fix_text(files.needed(wanted)) + ", or set max_sessions"};
}

}  // namespace postern::proxy
