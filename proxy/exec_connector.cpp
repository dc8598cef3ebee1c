#include "proxy/exec_connector.hpp"

#include "proxy/child_reaper.hpp"
#include "proxy/helper_orders.hpp"
#include "proxy/log.hpp"
#include "proxy/spawn.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

// Spawned on the spot: its event is made active at once, so the session hears of it from the
// loop, as of any attempt.
class ExecAttempt final : public BackendAttempt {
public:
    ExecAttempt(UniqueFd fd, std::unique_ptr<ChildProcess> child, EventPtr event) noexcept
        : fd_(std::move(fd)), child_(std::move(child)), event_(std::move(event)) {}

    bool on_event(short /*what*/, BackendOutcome& outcome) override {
        outcome.fd = std::move(fd_);
        outcome.child = std::move(child_);
        return true;
    }

private:
    UniqueFd fd_;
    std::unique_ptr<ChildProcess> child_;  // abandoned attempt: the program is ended
    EventPtr event_;
};

constexpr std::array<std::string_view, 9> kClientVariables{
    "PROTO",        "TCPREMOTEIP",  "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT",
    "TCPLOCALHOST", "SSL_PROTOCOL", "SSL_CIPHER",    "SSL_TLS_SNI"};

// The client's (or its local) address for the UCSPI variables; no client: postern itself, on
// loopback.
HostPort ucspi_address(const SocketAddress& address) {
    HostPort hp = address.length > 0 ? host_port(address.get()) : HostPort{};
    return hp.host.empty() ? HostPort{"127.0.0.1", 0} : hp;
}

// The program's ends must not land on 0, 1 or 2 (closed in a daemon started without them),
// where the child's dup2() onto them would be undone.
bool above_stdio(UniqueFd& fd) noexcept {
    if (fd.get() > STDERR_FILENO) {
        return true;
    }
    fd.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
    return fd.get() >= 0;
}

bool set_nonblocking(int fd) noexcept {
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

std::vector<std::string> client_environment(const ClientInfo& client) {
    const HostPort remote = ucspi_address(client.peer);
    const HostPort local = ucspi_address(client.local);
    std::vector<std::string> env;
    env.reserve(kClientVariables.size());
    env.emplace_back("PROTO=TCP");
    env.push_back("TCPREMOTEIP=" + remote.host);
    env.push_back("TCPREMOTEPORT=" + std::to_string(remote.port));
    env.push_back("TCPLOCALIP=" + local.host);
    env.push_back("TCPLOCALPORT=" + std::to_string(local.port));
    std::string_view host = !client.sni.empty() ? client.sni : client.hostname;
    env.push_back("TCPLOCALHOST=" + std::string(host.empty() ? "localhost" : host));
    if (client.tls_version != nullptr && client.tls_version[0] != '\0') {
        env.push_back(std::string("SSL_PROTOCOL=") + client.tls_version);
        env.push_back(std::string("SSL_CIPHER=") + (client.cipher != nullptr ? client.cipher : ""));
        if (!client.sni.empty()) {
            env.push_back("SSL_TLS_SNI=" + std::string(client.sni));
        }
    }
    return env;
}

bool is_client_variable(std::string_view entry) {
    const std::size_t equals = entry.find('=');
    return equals != std::string_view::npos && entry.find('\0') == std::string_view::npos &&
           std::find(kClientVariables.begin(), kClientVariables.end(), entry.substr(0, equals)) !=
               kClientVariables.end();
}

std::vector<std::string> program_environment(std::vector<std::string> client_env,
                                             const conf::ExecSpec& exec) {
    std::vector<std::string> env = std::move(client_env);
    const bool path = std::any_of(exec.env.begin(), exec.env.end(),
                                  [](const auto& variable) { return variable.first == "PATH"; });
    if (!path) {
        env.emplace_back("PATH=/usr/bin:/bin");
    }
    for (const auto& [name, value] : exec.env) {
        env.push_back(name);
        env.back().append("=").append(value);
    }
    return env;
}

std::vector<std::string> exec_environment(const ClientInfo& client, const conf::ExecSpec& exec) {
    return program_environment(client_environment(client), exec);
}

std::string exec_privilege_error(const conf::BackendSpec& spec, uid_t euid) {
    if (euid == 0 || (!spec.exec.uid && !spec.exec.gid)) {
        return {};
    }
    const bool user = !spec.exec.user.empty();
    return "backend \"" + spec.name + "\": " + spec.key_name +
           (user ? ".exec_user" : ".exec_group") + " = \"" +
           (user ? spec.exec.user : spec.exec.group) +
           "\": running the program as another user or group needs postern to run as root "
           "(it runs as uid " +
           std::to_string(euid) + ")";
}

std::shared_ptr<ExecConnector> ExecConnector::create(const conf::BackendSpec& spec,
                                                     const conf::ServerSettings& server,
                                                     PrivilegedHelper* helper, std::string& error) {
    error = exec_privilege_error(spec, ::geteuid());
    if (!error.empty()) {
        return nullptr;
    }
    if (helper != nullptr && runs_as_other(spec.exec, server)) {
        conf::BackendSpec as_run = spec;
        as_run.exec = with_server_ids(spec.exec, server);
        return std::make_shared<ExecConnector>(as_run, helper);
    }
    return std::make_shared<ExecConnector>(spec, nullptr);
}

ExecConnector::ExecConnector(const conf::BackendSpec& spec, PrivilegedHelper* helper)
    : exec_(spec.exec),
      helper_(helper),
      timeout_(spec.connect_timeout),
      log_(std::make_shared<StderrLog>(spec.name)) {
    argv_ = c_strings(exec_.argv);
}

std::unique_ptr<BackendAttempt> ExecConnector::connect(const BackendRequest& request,
                                                       BackendOutcome& failed) const {
    const std::string& program = exec_.argv.front();
    if (request.children == nullptr) {
        failed.failure = "exec " + program + ": no child reaper on this loop";
        return nullptr;
    }
    std::array<int, 2> pair{-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair.data()) != 0) {
        failed.failure = "exec " + program + ": socketpair: " + errno_text(errno);
        return nullptr;
    }
    UniqueFd ours{pair[0]};
    UniqueFd theirs{pair[1]};  // blocking, as UCSPI programs expect
    std::array<int, 2> pipe{-1, -1};
    if (::pipe2(pipe.data(), O_CLOEXEC) != 0) {
        failed.failure = "exec " + program + ": pipe: " + errno_text(errno);
        return nullptr;
    }
    UniqueFd err_read{pipe[0]};
    UniqueFd err_write{pipe[1]};
    if (!above_stdio(theirs) || !above_stdio(err_write) || !set_nonblocking(ours.get()) ||
        !set_nonblocking(err_read.get())) {
        failed.failure = "exec " + program + ": fcntl: " + errno_text(errno);
        return nullptr;
    }
    Spawned spawned;
    if (helper_ != nullptr) {
        if (!helper_->spawn(SpawnOrder{exec_, client_environment(request.client)}, theirs.get(),
                            err_write.get(), spawned, failed.failure)) {
            return nullptr;
        }
        return started(request, std::move(ours), std::move(theirs), std::move(err_read),
                       std::move(err_write), std::move(spawned), failed);
    }
    std::vector<std::string> env = exec_environment(request.client, exec_);
    const std::vector<char*> envp = c_strings(env);
    const SpawnRequest spawn_request{.argv = argv_.data(),
                                     .envp = envp.data(),
                                     .stdio = theirs.get(),
                                     .stderr_fd = err_write.get(),
                                     .uid = exec_.uid,
                                     .gid = exec_.gid};
    if (!spawn(spawn_request, spawned, failed.failure)) {
        return nullptr;
    }
    return started(request, std::move(ours), std::move(theirs), std::move(err_read),
                   std::move(err_write), std::move(spawned), failed);
}

std::unique_ptr<BackendAttempt> ExecConnector::started(const BackendRequest& request, UniqueFd ours,
                                                       UniqueFd theirs, UniqueFd err_read,
                                                       UniqueFd err_write, Spawned spawned,
                                                       BackendOutcome& failed) const {
    const std::string& program = exec_.argv.front();
    theirs.reset();  // the child's now: its exit is the session's EOF
    err_write.reset();
    std::string error;
    auto child = request.children->adopt(std::move(spawned), std::move(err_read), log_, error);
    if (!child) {
        failed.failure = "exec " + program + ": " + error;
        return nullptr;
    }
    EventPtr event{event_new(request.base, -1, 0, request.callback, request.arg)};
    if (!event) {
        failed.failure = "exec " + program + ": cannot create an event";
        return nullptr;
    }
    event_active(event.get(), EV_WRITE, 0);
    return std::make_unique<ExecAttempt>(std::move(ours), std::move(child), std::move(event));
}

}  // namespace postern::proxy
