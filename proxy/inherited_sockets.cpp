#include "proxy/inherited_sockets.hpp"

#include "proxy/log.hpp"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fcntl.h>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START
constexpr long kMaxFds = 4096;

bool parse_number(const char* text, long& out) {
    if (text == nullptr) {
        return false;
    }
    const std::string_view view{text};
    const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), out);
    return ec == std::errc{} && end == view.data() + view.size();
}

// What is wrong with `fd` as a listening TCP socket; empty when nothing.
std::string check_listening(int fd, SocketAddress& address) {
    int value = 0;
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) != 0) {
        return errno == ENOTSOCK ? "not a socket" : errno_text(errno);
    }
    if (value != SOCK_STREAM) {
        return "not a stream socket";
    }
    length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) != 0 || value == 0) {
        return "not listening";
    }
    address.length = sizeof(address.storage);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0) {
        return errno_text(errno);
    }
    const int family = address.get()->sa_family;
    if (family != AF_INET && family != AF_INET6) {
        return "not an IPv4 or IPv6 socket";
    }
    return {};
}

}  // namespace

std::vector<InheritedSocket> take_inherited_sockets(std::string& error) {
    // At startup, before any thread exists: getenv and unsetenv cannot race.
    long pid = 0;
    long count = 0;
    // NOLINTBEGIN(concurrency-mt-unsafe)
    const bool ours = parse_number(std::getenv("LISTEN_PID"), pid) && pid == ::getpid();
    const bool counted = parse_number(std::getenv("LISTEN_FDS"), count);
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    // NOLINTEND(concurrency-mt-unsafe)
    std::vector<InheritedSocket> out;
    if (!ours || !counted || count <= 0) {
        return out;
    }
    if (count > kMaxFds) {
        error = "LISTEN_FDS=" + std::to_string(count) + " is more than postern takes";
        return out;
    }
    for (int fd = kFirstFd; fd < kFirstFd + static_cast<int>(count); ++fd) {
        InheritedSocket socket{UniqueFd{fd}, {}};
        const std::string problem = check_listening(fd, socket.address);
        if (!problem.empty()) {
            error = "inherited descriptor " + std::to_string(fd) + ": " + problem;
            out.clear();
            return out;
        }
        const int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
            ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
            error = "inherited descriptor " + std::to_string(fd) + ": " + errno_text(errno);
            out.clear();
            return out;
        }
        out.push_back(std::move(socket));
    }
    return out;
}

}  // namespace postern::proxy
