#pragma once
// An exec backend (UCSPI, as tcpserver and couriertcpd run qmail and Courier): one program per
// session, no shell, the session's plaintext on its fds 0 and 1 (one end of a socketpair; the
// other end is the backend fd the session gets), its stderr into postern's log
// (proxy/stderr_log.hpp), its end watched by the worker's ChildReaper (BackendRequest::children),
// how it starts in proxy/spawn.hpp. The attempt completes at once, through its event, like a
// TCP connect that succeeded on the spot; a program that cannot be started fails the attempt
// at once ("exec /usr/bin/x: Permission denied"), and the client gets the protocol's error.
//
// The program's environment is built from scratch: exec_environment() below, then
// backend.exec_env (which may replace PATH, nothing else: the loader refuses the rest).

#include "conf/config.hpp"
#include "proxy/backend_connector.hpp"
#include "proxy/privileged_helper.hpp"
#include "proxy/spawn.hpp"
#include "proxy/stderr_log.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace postern::proxy {

class ExecConnector final : public BackendConnector {
public:
    // Null with `error` naming the backend and the key when the backend cannot work as
    // configured: exec_user or exec_group while postern is not root. With `helper` (postern
    // becomes server.user), a program that runs as anybody else is started by the helper.
    [[nodiscard]] static std::shared_ptr<ExecConnector> create(const conf::BackendSpec& spec,
                                                               const conf::ServerSettings& server,
                                                               PrivilegedHelper* helper,
                                                               std::string& error);

    explicit ExecConnector(const conf::BackendSpec& spec, PrivilegedHelper* helper = nullptr);

    // The attempt completes at once; the session's timer never fires for it.
    [[nodiscard]] std::chrono::milliseconds timeout() const noexcept override { return timeout_; }
    [[nodiscard]] std::unique_ptr<BackendAttempt> connect(const BackendRequest& request,
                                                          BackendOutcome& failed) const override;

    // The backend's stderr lines, rate-limited (shared by the children of every worker).
    [[nodiscard]] const std::shared_ptr<StderrLog>& stderr_log() const noexcept { return log_; }

private:
    // The program runs: the session's ends of the socketpair and the stderr pipe to the reaper.
    [[nodiscard]] std::unique_ptr<BackendAttempt> started(const BackendRequest& request,
                                                          UniqueFd ours, UniqueFd theirs,
                                                          UniqueFd err_read, UniqueFd err_write,
                                                          Spawned spawned,
                                                          BackendOutcome& failed) const;

    conf::ExecSpec exec_;
    std::vector<char*> argv_;   // into exec_.argv, null-terminated
    PrivilegedHelper* helper_;  // set: it starts the program (as exec_, with server.user's ids)
    std::chrono::milliseconds timeout_;
    std::shared_ptr<StderrLog> log_;
};

// What the program finds in its environment, "NAME=value" each: UCSPI's
//   PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP, TCPLOCALPORT (an IPv4-mapped IPv6
//   address, a client of a dual-stack listener, as plain IPv4 text), TCPLOCALHOST (the SNI,
//   else the listener's host name);
// mod_ssl's SSL_PROTOCOL and SSL_CIPHER (TLS only) and SSL_TLS_SNI (TLS with SNI only);
// PATH=/usr/bin:/bin unless `exec.env` sets PATH; then `exec.env`.
// Every UCSPI variable is always set (Courier's pop3login crashes without TCPLOCALIP): with
// no client (peer family AF_UNSPEC: postern asking the backend something on its own, such as
// its EHLO) the remote address is 127.0.0.1 port 0, and so is an unknown local one.
[[nodiscard]] std::vector<std::string> exec_environment(const ClientInfo& client,
                                                        const conf::ExecSpec& exec);
// Its two parts: what the client decides (the UCSPI and SSL variables), and the rest.
[[nodiscard]] std::vector<std::string> client_environment(const ClientInfo& client);
[[nodiscard]] std::vector<std::string> program_environment(std::vector<std::string> client_env,
                                                           const conf::ExecSpec& exec);
// Whether "NAME=value" is one of client_environment's variables (and holds no NUL).
[[nodiscard]] bool is_client_variable(std::string_view entry);

// Why the backend cannot run as configured by a process with effective uid `euid`; empty when
// it can.
[[nodiscard]] std::string exec_privilege_error(const conf::BackendSpec& spec, uid_t euid);

}  // namespace postern::proxy
