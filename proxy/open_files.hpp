#pragma once
// The open-files limit (RLIMIT_NOFILE) against server.max_sessions. A session holds the
// client's socket and the backend's (an exec backend's: its socket, the program's pidfd and
// its stderr pipe); every worker listens on every listener; the process keeps a few more (the
// event loops and their wake-ups, the reloader's inotify, the resolver, certificate files
// while a store is built). At startup run() raises the soft limit to the hard one, refuses a
// max_sessions written in the file that the limit cannot hold and lowers the default to what
// it can (with a warning); `postern check` reports the same against its own limit.

#include "conf/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace postern::proxy {

// Descriptors the process needs besides its sessions' and listening sockets' (measured idle:
// 4 + 4 per worker: stdio, inotify, each loop's epoll, wake-up pipe and eventfd), with room
// for the transient ones (the resolver, certificate files during a reload, EHLO learners).
inline constexpr std::size_t kSpareFiles = 64;
inline constexpr std::size_t kSpareFilesPerWorker = 4;

struct OpenFiles {
    std::size_t per_session = 2;
    std::size_t listening = 0;  // listeners x workers
    std::size_t spare = 0;
    [[nodiscard]] std::uint64_t needed(std::size_t sessions) const noexcept {
        return std::uint64_t{per_session} * sessions + listening + spare;
    }
    // The most sessions `limit` descriptors hold; 0 when not even one.
    [[nodiscard]] std::size_t sessions_within(std::uint64_t limit) const noexcept;
};
[[nodiscard]] OpenFiles open_files_for(const conf::Config& config, unsigned workers) noexcept;

// Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit in force afterwards.
[[nodiscard]] std::uint64_t raise_open_files_limit() noexcept;
[[nodiscard]] std::uint64_t open_files_hard_limit() noexcept;

// What to run with under `limit` open files: server.max_sessions when it fits; the default
// lowered to fit when it was not written (message: a warning); 0 when a written value, or even
// one session, does not fit (message: the error, naming the key, the limit and the fix).
struct SessionsFit {
    std::size_t sessions = 0;
    std::string message;  // empty when max_sessions fits as configured
};
[[nodiscard]] SessionsFit fit_max_sessions(const conf::Config& config, unsigned workers,
                                           std::uint64_t limit);

}  // namespace postern::proxy
