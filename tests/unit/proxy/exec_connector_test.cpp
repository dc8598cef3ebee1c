// proxy::ExecConnector through the BackendConnector seam, with real programs (/bin/sh, env,
// grep): the environment a program gets, its fds 0 and 1 on the session's socket and nothing
// else open, signals reset, an abandoned attempt, and the failures worded for the log.
#include "proxy/exec_connector.hpp"

#include "tests/unit/proxy/exec_test_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

namespace postern::proxy {
namespace {

using namespace test;

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
