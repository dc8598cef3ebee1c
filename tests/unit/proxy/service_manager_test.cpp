#include "proxy/service_manager.hpp"

#include "proxy/event.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

using postern::proxy::service_status;

TEST_CASE("service status: sessions and certificates, singular for one") {
    CHECK(service_status(12, 3, "") == "12 sessions, 3 certificates");
    CHECK(service_status(1, 1, "") == "1 session, 1 certificate");
    CHECK(service_status(0, 2, "") == "0 sessions, 2 certificates");
}

TEST_CASE("service status: a failed reload is said on the same line, cut to a readable length") {
    CHECK(service_status(0, 2, "a.pem: no key\nsecond line") ==
          "0 sessions, 2 certificates; reload failed: a.pem: no key second line");
    const std::string status = service_status(0, 2, std::string(1000, 'x'));
    CHECK(status.find('\n') == std::string::npos);
    CHECK(status.size() < 600);
    CHECK(status.ends_with("..."));
}

namespace {

// A stand-in for systemd's notification socket: NOTIFY_SOCKET names it while it lives.
class NotifySocket {
public:
    NotifySocket() {
        path_ = std::filesystem::temp_directory_path() /
                ("postern-notify-" + std::to_string(::getpid()));
        std::filesystem::remove(path_);
        fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        REQUIRE(fd_.get() >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        REQUIRE(path_.string().size() < sizeof(address.sun_path));
        path_.string().copy(address.sun_path, sizeof(address.sun_path) - 1);
        REQUIRE(::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) ==
                0);
        ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);  // NOLINT(concurrency-mt-unsafe): one thread
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    NotifySocket(NotifySocket&&) = delete;
    NotifySocket& operator=(NotifySocket&&) = delete;
    ~NotifySocket() {
        ::unsetenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe): one thread
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }

    // Every datagram sent so far (sd_notify's sendmsg has returned, so they are all queued).
    std::vector<std::string> received() {
        std::vector<std::string> out;
        std::array<char, 4096> buffer{};
        ssize_t n = 0;
        while ((n = ::recv(fd_.get(), buffer.data(), buffer.size(), 0)) > 0) {
            out.emplace_back(buffer.data(), static_cast<std::size_t>(n));
        }
        return out;
    }

private:
    std::filesystem::path path_;
    postern::proxy::UniqueFd fd_;
};

}  // namespace

TEST_CASE("service manager: once stopping, a reload neither says RELOADING=1 nor READY=1") {
    NotifySocket notify;
    const postern::proxy::ClientLimits limits{10, {}};
    const postern::tls::CertSource certs{std::make_shared<postern::tls::CertStore>()};
    postern::proxy::ServiceManager manager{limits, certs};
    REQUIRE(manager.active());
    manager.ready();
    manager.reloading("SIGHUP");
    manager.stopping();
    manager.reloaded("");  // the reload that was under way ends during the drain
    manager.reloading("a certificate file changed");
    manager.reloaded("");
    const std::vector<std::string> sent = notify.received();
    REQUIRE(sent.size() == 3);
    CHECK(sent[0].starts_with("READY=1\n"));
    CHECK(sent[1].starts_with("RELOADING=1\n"));
    CHECK(sent[2].starts_with("STOPPING=1\nSTATUS=stopping; 0 sessions, 0 certificates"));
}
