#include "proxy/accept_pause.hpp"

#include "exec_test_support.hpp"

#include <doctest/doctest.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

namespace postern::proxy::test {
namespace {

// A listener on 127.0.0.1 (a port from the OS) that counts the connections it accepts.
struct CountingListener {
    EventBasePtr base{event_base_new()};
    ListenerPtr listener;
    sockaddr_in address{};
    int accepted = 0;

    CountingListener() {
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        listener.reset(evconnlistener_new_bind(
            base.get(), &on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
            reinterpret_cast<const sockaddr*>(&address), sizeof address));
        REQUIRE(listener);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(evconnlistener_get_fd(listener.get()),
                              reinterpret_cast<sockaddr*>(&address), &length) == 0);
    }

    static void on_accept(evconnlistener* /*l*/, evutil_socket_t fd, sockaddr* /*peer*/,
                          int /*len*/, void* self) {
        ::close(fd);
        ++static_cast<CountingListener*>(self)->accepted;
    }

    [[nodiscard]] UniqueFd connect_client() const {
        UniqueFd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) ==
                0);
        return fd;
    }
};

}  // namespace

TEST_CASE("accept pause: short for a shortage of descriptors or memory, a second otherwise") {
    CHECK(AcceptPause::pause_for(EMFILE) == AcceptPause::kShortage);
    CHECK(AcceptPause::pause_for(ENFILE) == AcceptPause::kShortage);
    CHECK(AcceptPause::pause_for(ENOBUFS) == AcceptPause::kShortage);
    CHECK(AcceptPause::pause_for(ENOMEM) == AcceptPause::kShortage);
    CHECK(AcceptPause::pause_for(EPERM) == AcceptPause::kOtherError);
    CHECK(AcceptPause::kShortage <= 100ms);
}

TEST_CASE("accept pause: the warning names the limit that was hit") {
    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
    const std::string emfile = AcceptPause::describe(EMFILE);
    CHECK(emfile.find("Too many open files") != std::string::npos);
    if (limit.rlim_cur != RLIM_INFINITY) {
        CHECK(emfile.find("ulimit -n, is " + std::to_string(limit.rlim_cur)) != std::string::npos);
    }
    CHECK(AcceptPause::describe(ENFILE).find("fs.file-max") != std::string::npos);
}

TEST_CASE("accept pause: no accepting until the pause is over, then the queue is served") {
    const LogCapture log;
    CountingListener l;
    AcceptPause pause(l.base.get(), l.listener.get(), "127.0.0.1:test");
    const auto started = Clock::now();
    pause.on_error(EMFILE);
    const UniqueFd client = l.connect_client();  // complete in the kernel, waiting in the queue
    while (l.accepted == 0 && Clock::now() - started < 5s) {
        REQUIRE(event_base_loop(l.base.get(), EVLOOP_ONCE) == 0);
    }
    CHECK(l.accepted == 1);
    CHECK(Clock::now() - started >= AcceptPause::kShortage - 5ms);
    CHECK(Clock::now() - started < AcceptPause::kShortage + 900ms);
}

TEST_CASE("accept pause: one warning per listener per kWarnEvery, counting the pauses between") {
    const LogCapture log;
    CountingListener l;
    AcceptPause pause(l.base.get(), l.listener.get(), "127.0.0.1:test");
    const auto t0 = AcceptPause::Clock::now();
    for (int i = 0; i < 50; ++i) {  // ten a second for five seconds
        pause.on_error(EMFILE, t0 + i * AcceptPause::kShortage);
    }
    CHECK(log.count("accept on 127.0.0.1:test failed: Too many open files") == 1);
    pause.on_error(EMFILE, t0 + AcceptPause::kWarnEvery);
    CHECK(log.count("accept on 127.0.0.1:test failed: Too many open files") == 2);
    CHECK(log.count("; 49 more pause(s) since the last warning") == 1);
    pause.cancel();
}

}  // namespace postern::proxy::test
