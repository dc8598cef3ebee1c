// proxy::ExecConnector through the BackendConnector seam, with real programs (/bin/sh, env,
// grep, sleep): the environment a program gets, its fds 0 and 1 on the session's socket and
// nothing else open, signals reset, its stderr in the log (rate-limited), its end once the
// session lets go (SIGTERM, then SIGKILL), shutdown, and the failures worded for the log.
#include "proxy/exec_connector.hpp"

#include "proxy/child_reaper.hpp"

#include <doctest/doctest.h>
#include <event2/event.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace postern::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

SocketAddress v4(const char* ip, std::uint16_t port) {
    SocketAddress a;
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, ip, &in->sin_addr) == 1);
    a.length = sizeof(sockaddr_in);
    return a;
}

SocketAddress v6(const char* ip, std::uint16_t port) {
    SocketAddress a;
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    REQUIRE(inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1);
    a.length = sizeof(sockaddr_in6);
    return a;
}

conf::BackendSpec exec_backend(std::vector<std::string> argv) {
    conf::BackendSpec spec;
    spec.name = "prog";
    spec.key_name = "backend[1]";
    spec.exec.argv = std::move(argv);
    return spec;
}

// Captures the log lines (the default logger) for the test's life.
struct LogCapture {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
    std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

    LogCapture() {
        auto logger = std::make_shared<spdlog::logger>("capture", sink);
        logger->set_pattern("%l %v");
        logger->set_level(spdlog::level::debug);
        spdlog::set_default_logger(logger);
    }
    ~LogCapture() { spdlog::set_default_logger(previous); }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;
    LogCapture(LogCapture&&) = delete;
    LogCapture& operator=(LogCapture&&) = delete;

    [[nodiscard]] std::vector<std::string> lines() const { return sink->last_formatted(); }
    [[nodiscard]] std::size_t count(std::string_view needle) const {
        std::size_t n = 0;
        for (const auto& line : lines()) {
            n += line.find(needle) != std::string::npos ? 1U : 0U;
        }
        return n;
    }
};

void on_attempt(evutil_socket_t /*fd*/, short /*what*/, void* arg) {
    ++*static_cast<int*>(arg);
}

void tick(evutil_socket_t /*fd*/, short /*what*/, void* /*arg*/) {}

// One worker's loop and reaper, a session's request through them.
struct Loop {
    EventBasePtr base{event_base_new()};
    ChildReaper reaper;
    EventPtr ticker;  // keeps the loop turning while a test waits for a condition
    int heard = 0;

    explicit Loop(std::chrono::milliseconds kill_after = 300ms) : reaper(base.get(), kill_after) {
        ticker.reset(event_new(base.get(), -1, EV_PERSIST, &tick, nullptr));
        const timeval every = to_timeval(10ms);
        event_add(ticker.get(), &every);
    }

    BackendRequest request(ClientInfo client = {}) {
        return {.base = base.get(),
                .callback = &on_attempt,
                .arg = &heard,
                .client = client,
                .children = &reaper};
    }

    // Runs the loop until `done` or `limit` passes; returns done().
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) const {
        const auto until = Clock::now() + limit;
        while (!done() && Clock::now() < until) {
            REQUIRE(event_base_loop(base.get(), EVLOOP_ONCE) == 0);
        }
        return done();
    }

    // connect() and the attempt's event: the outcome a session would get.
    BackendOutcome start(const ExecConnector& connector, ClientInfo client = {}) {
        BackendOutcome outcome;
        auto attempt = connector.connect(request(client), outcome);
        REQUIRE_MESSAGE(attempt != nullptr, outcome.failure);
        REQUIRE(run_until([this] { return heard > 0; }));
        CHECK(attempt->on_event(EV_WRITE, outcome));
        REQUIRE(outcome.fd.get() >= 0);
        REQUIRE(outcome.child != nullptr);
        return outcome;
    }

    // Everything the program writes to its stdout until it closes it.
    std::string read_all(int fd) const {
        std::string out;
        std::array<char, 4096> buffer{};
        bool eof = false;
        run_until([&] {
            const ssize_t n = ::read(fd, buffer.data(), buffer.size());
            if (n > 0) {
                out.append(buffer.data(), static_cast<std::size_t>(n));
            }
            eof = n == 0 || (n < 0 && errno != EAGAIN);
            return eof;
        });
        CHECK(eof);
        return out;
    }
};

// True once `pid` runs `name` (it has exec'd it, so a trap set before is in force).
bool runs(pid_t pid, std::string_view name) {
    std::array<char, 64> comm{};
    const std::string path = "/proc/" + std::to_string(pid) + "/comm";
    const UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    return fd.get() >= 0 && ::read(fd.get(), comm.data(), comm.size() - 1) > 0 &&
           std::string_view(comm.data()).starts_with(name);
}

bool gone(pid_t pid) {
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

}  // namespace

TEST_CASE("exec environment: UCSPI and mod_ssl variables from the client, then exec_env") {
    conf::ExecSpec exec;
    exec.env = {{"DATABYTES", "20000000"}};
    const SocketAddress peer = v4("203.0.113.7", 50123);
    const SocketAddress local = v4("192.0.2.1", 993);
    const ClientInfo tls{.peer = peer,
                         .local = local,
                         .address = "203.0.113.7:50123",
                         .sni = "mail.a.test",
                         .hostname = "mx.example",
                         .tls_version = "TLSv1.3",
                         .cipher = "TLS_AES_256_GCM_SHA384"};
    CHECK(exec_environment(tls, exec) ==
          std::vector<std::string>{"PROTO=TCP", "TCPREMOTEIP=203.0.113.7", "TCPREMOTEPORT=50123",
                                   "TCPLOCALIP=192.0.2.1", "TCPLOCALPORT=993",
                                   "TCPLOCALHOST=mail.a.test", "SSL_PROTOCOL=TLSv1.3",
                                   "SSL_CIPHER=TLS_AES_256_GCM_SHA384", "SSL_TLS_SNI=mail.a.test",
                                   "PATH=/usr/bin:/bin", "DATABYTES=20000000"});

    SUBCASE("no SNI: the listener's name, no SSL_TLS_SNI") {
        ClientInfo client = tls;
        client.sni = "";
        const auto env = exec_environment(client, exec);
        CHECK(std::count(env.begin(), env.end(), "TCPLOCALHOST=mx.example") == 1);
        CHECK(std::none_of(env.begin(), env.end(),
                           [](const std::string& v) { return v.starts_with("SSL_TLS_SNI="); }));
        CHECK(std::count(env.begin(), env.end(), "SSL_PROTOCOL=TLSv1.3") == 1);
    }
    SUBCASE("plaintext: no SSL_ variable at all") {
        ClientInfo client = tls;
        client.sni = "";
        client.tls_version = "";
        client.cipher = "";
        const auto env = exec_environment(client, exec);
        CHECK(std::none_of(env.begin(), env.end(),
                           [](const std::string& v) { return v.starts_with("SSL_"); }));
    }
    SUBCASE("an IPv4-mapped client of a dual-stack listener is plain IPv4; IPv6 stays IPv6") {
        ClientInfo client = tls;
        const SocketAddress mapped = v6("::ffff:127.0.0.2", 40000);
        const SocketAddress six = v6("2001:db8::1", 993);
        client.peer = mapped;
        client.local = six;
        const auto env = exec_environment(client, exec);
        CHECK(env[1] == "TCPREMOTEIP=127.0.0.2");
        CHECK(env[2] == "TCPREMOTEPORT=40000");
        CHECK(env[3] == "TCPLOCALIP=2001:db8::1");
    }
    SUBCASE("no client (AF_UNSPEC): loopback, port 0, every variable still set") {
        ClientInfo none;
        none.hostname = "mx.example";
        CHECK(exec_environment(none, {}) ==
              std::vector<std::string>{"PROTO=TCP", "TCPREMOTEIP=127.0.0.1", "TCPREMOTEPORT=0",
                                       "TCPLOCALIP=127.0.0.1", "TCPLOCALPORT=0",
                                       "TCPLOCALHOST=mx.example", "PATH=/usr/bin:/bin"});
    }
    SUBCASE("exec_env may replace PATH") {
        exec.env = {{"PATH", "/var/qmail/bin:/usr/bin"}};
        const auto env = exec_environment(tls, exec);
        CHECK(std::count_if(env.begin(), env.end(),
                            [](const std::string& v) { return v.starts_with("PATH="); }) == 1);
        CHECK(env.back() == "PATH=/var/qmail/bin:/usr/bin");
    }
}

TEST_CASE("exec privileges: exec_user and exec_group need root, and the error names the key") {
    conf::BackendSpec spec = exec_backend({"/var/qmail/bin/qmail-smtpd"});
    spec.name = "qmail";
    CHECK(exec_privilege_error(spec, 1000).empty());
    spec.exec.user = "qmaild";
    spec.exec.uid = 64011;
    spec.exec.gid = 64010;
    CHECK(exec_privilege_error(spec, 0).empty());
    const std::string error = exec_privilege_error(spec, 1000);
    CHECK(error.find("backend \"qmail\"") != std::string::npos);
    CHECK(error.find("backend[1].exec_user = \"qmaild\"") != std::string::npos);
    CHECK(error.find("root") != std::string::npos);
    spec.exec.user.clear();
    spec.exec.uid.reset();
    spec.exec.group = "nofiles";
    CHECK(exec_privilege_error(spec, 1000).find("backend[1].exec_group = \"nofiles\"") !=
          std::string::npos);
}

TEST_CASE("exec connector: the program gets the session's environment and nothing else") {
    const ExecConnector connector{exec_backend({"/usr/bin/env"})};
    Loop loop;
    const SocketAddress peer = v4("127.0.0.2", 4242);
    const SocketAddress local = v4("127.0.0.1", 465);
    const ClientInfo client{.peer = peer,
                            .local = local,
                            .address = "127.0.0.2:4242",
                            .sni = "mail.a.test",
                            .hostname = "mx.example",
                            .tls_version = "TLSv1.2",
                            .cipher = "ECDHE-ECDSA-AES128-GCM-SHA256"};
    BackendOutcome outcome = loop.start(connector, client);
    const int flags = fcntl(outcome.fd.get(), F_GETFL);
    CHECK((flags & O_NONBLOCK) != 0);
    CHECK((fcntl(outcome.fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(split_lines(loop.read_all(outcome.fd.get())) ==
          exec_environment(client, conf::ExecSpec{}));
    const pid_t pid = outcome.child->pid();
    outcome.child.reset();
    CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
    CHECK(gone(pid));
}

TEST_CASE("exec connector: fds 0 and 1 are the session's socket, 2 a pipe, no other fd leaks") {
    // A descriptor without CLOEXEC, as a careless library might open one: it must not leak.
    const int leak = ::dup2(STDERR_FILENO, 77);
    REQUIRE(leak == 77);
    const ExecConnector connector{exec_backend(
        {"/bin/sh", "-c",
         "read line; echo \"got $line\"; for fd in 0 1 2; do /usr/bin/readlink /proc/$$/fd/$fd "
         "| /usr/bin/cut -d: -f1; done; [ -e /proc/$$/fd/77 ] && echo leaked || echo closed; "
         "pwd"})};
    Loop loop;
    BackendOutcome outcome = loop.start(connector);
    REQUIRE(::send(outcome.fd.get(), "hello\n", 6, MSG_NOSIGNAL) == 6);
    CHECK(split_lines(loop.read_all(outcome.fd.get())) ==
          std::vector<std::string>{"got hello", "socket", "socket", "pipe", "closed", "/"});
    ::close(leak);
}

TEST_CASE("exec connector: signal dispositions and mask reset in the program") {
    // postern ignores SIGPIPE; a worker thread may block signals: neither reaches the program.
    struct sigaction ignore {};
    struct sigaction previous {};
    ignore.sa_handler = SIG_IGN;
    REQUIRE(sigaction(SIGPIPE, &ignore, &previous) == 0);
    sigset_t blocked;
    sigset_t old_mask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    REQUIRE(pthread_sigmask(SIG_BLOCK, &blocked, &old_mask) == 0);
    const ExecConnector connector{
        exec_backend({"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"})};
    Loop loop;
    BackendOutcome outcome = loop.start(connector);
    const std::string status = loop.read_all(outcome.fd.get());
    REQUIRE(pthread_sigmask(SIG_SETMASK, &old_mask, nullptr) == 0);
    REQUIRE(sigaction(SIGPIPE, &previous, nullptr) == 0);
    CHECK(status == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_CASE("exec connector: stderr lines reach the log with the backend's name, rate-limited") {
    const LogCapture log;
    const ExecConnector connector{exec_backend(
        {"/bin/sh", "-c", "echo 'INFO: LOGIN, user=test' >&2; printf 'no newline\\033' >&2"})};
    Loop loop;
    BackendOutcome outcome = loop.start(connector);
    const pid_t pid = outcome.child->pid();
    CHECK(loop.read_all(outcome.fd.get()).empty());
    CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
    const std::string prefix = "info prog[" + std::to_string(pid) + "]: ";
    CHECK(log.count(prefix + "INFO: LOGIN, user=test") == 1);
    CHECK(log.count(prefix + "no newline\\x1b") == 1);  // the tail, escaped

    SUBCASE("a chatty program: at most 100 lines a second, then one line with the count") {
        const ExecConnector chatty{exec_backend(
            {"/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i >&2; i=$((i+1)); done"})};
        BackendOutcome flood = loop.start(chatty);
        CHECK(loop.read_all(flood.fd.get()).empty());
        CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
        const std::size_t logged = log.count("]: line ");
        CHECK(logged >= 100);
        CHECK(logged < 300);
        CHECK(log.count("prog: suppressed ") >= 1);
        CHECK(logged + chatty.stderr_log()->suppressed_total() == 300);
    }
}

TEST_CASE("stderr log: N lines a second, the rest counted once the next second starts") {
    const LogCapture log;
    StderrLog stderr_log{"qmail", 3};
    const auto t0 = Clock::now();
    for (int i = 0; i < 10; ++i) {
        stderr_log.line(42, "spam", t0 + std::chrono::milliseconds(i));
    }
    CHECK(log.count("qmail[42]: spam") == 3);
    CHECK(log.count("suppressed") == 0);
    stderr_log.line(42, "later", t0 + 1500ms);
    CHECK(log.count("warning qmail: suppressed 7 stderr line(s)") == 1);
    CHECK(log.count("qmail[42]: later") == 1);
    stderr_log.flush();
    CHECK(log.count("suppressed") == 1);  // nothing more to report
}

TEST_CASE("exec connector: the session's end sends SIGTERM; SIGKILL when that is ignored") {
    const LogCapture log;
    Loop loop{300ms};
    SUBCASE("a program that stops on SIGTERM") {
        const ExecConnector connector{exec_backend({"/bin/sleep", "30"})};
        BackendOutcome outcome = loop.start(connector);
        const pid_t pid = outcome.child->pid();
        outcome.fd.reset();  // the session's end: its socket first, then the handle
        outcome.child.reset();
        const auto released = Clock::now();
        CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
        CHECK(Clock::now() - released < 300ms);
        CHECK(gone(pid));
        CHECK(log.count("SIGKILL") == 0);
    }
    SUBCASE("a program that ignores SIGTERM is killed kill_after later") {
        const ExecConnector connector{
            exec_backend({"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 30"})};
        BackendOutcome outcome = loop.start(connector);
        const pid_t pid = outcome.child->pid();
        // Until the trap is set, SIGTERM would still stop it: wait for sleep to be exec'd.
        CHECK(loop.run_until([&] { return runs(pid, "sleep"); }));
        outcome.fd.reset();
        outcome.child.reset();
        const auto released = Clock::now();
        CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
        CHECK(Clock::now() - released >= 250ms);  // libevent counts from its cached time
        CHECK(gone(pid));
        CHECK(log.count("still running 300 ms after SIGTERM; sending SIGKILL") == 1);
    }
    // No zombie: the reaper waited for each child it had.
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
}

TEST_CASE("exec connector: a program that exits on its own is reaped while the session holds it") {
    const ExecConnector connector{exec_backend({"/bin/true"})};
    Loop loop;
    BackendOutcome outcome = loop.start(connector);
    CHECK(loop.read_all(outcome.fd.get()).empty());  // its exit is the session's EOF
    CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
    outcome.child.reset();  // later: nothing left to signal
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
}

TEST_CASE("exec connector: an abandoned attempt ends its program") {
    const ExecConnector connector{exec_backend({"/bin/sleep", "30"})};
    Loop loop;
    BackendOutcome outcome;
    auto attempt = connector.connect(loop.request(), outcome);
    REQUIRE(attempt != nullptr);
    CHECK(loop.reaper.running() == 1);
    attempt.reset();  // the session closed before the attempt's event ran
    CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
    CHECK(loop.heard == 0);
}

TEST_CASE("child reaper: shutdown kills and reaps what is left, bounded") {
    const LogCapture log;
    std::vector<pid_t> pids;
    {
        Loop loop{10s};
        const ExecConnector stubborn{
            exec_backend({"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 30"})};
        const ExecConnector polite{exec_backend({"/bin/sleep", "30"})};
        std::vector<BackendOutcome> held;
        held.push_back(loop.start(stubborn));
        held.push_back(loop.start(polite));
        for (auto& outcome : held) {
            pids.push_back(outcome.child->pid());
            CHECK(loop.run_until([&] { return runs(pids.back(), "sleep"); }));
        }
        held.pop_back();  // released: SIGTERM sent, the kill timer far away
        const auto started = Clock::now();
        loop.reaper.shutdown(Clock::now() + 200ms);
        CHECK(Clock::now() - started < 2s);
        CHECK(loop.reaper.running() == 0);
        held.clear();  // handles of forgotten children: nothing happens
    }
    for (const pid_t pid : pids) {
        CHECK(gone(pid));
    }
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
}

TEST_CASE("exec connector: a program that cannot be started fails the attempt at once") {
    Loop loop;
    BackendOutcome failed;
    SUBCASE("missing") {
        const ExecConnector connector{exec_backend({"/nonexistent/qmail-smtpd"})};
        CHECK(connector.connect(loop.request(), failed) == nullptr);
        CHECK(failed.failure == "exec /nonexistent/qmail-smtpd: No such file or directory");
    }
    SUBCASE("not executable") {
        const ExecConnector connector{exec_backend({"/etc/passwd"})};
        CHECK(connector.connect(loop.request(), failed) == nullptr);
        CHECK(failed.failure == "exec /etc/passwd: Permission denied");
    }
    SUBCASE("no reaper to watch it") {
        const ExecConnector connector{exec_backend({"/bin/true"})};
        BackendRequest request = loop.request();
        request.children = nullptr;
        CHECK(connector.connect(request, failed) == nullptr);
        CHECK(failed.failure.find("no child reaper") != std::string::npos);
    }
    CHECK(failed.fd.get() < 0);
    CHECK(loop.reaper.running() == 0);
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);  // the failed child was reaped
}

}  // namespace postern::proxy
