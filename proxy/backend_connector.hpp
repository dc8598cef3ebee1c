#pragma once
// The seam between a session and its backend. The session hands a BackendConnector what it
// knows about its client and gets back, asynchronously, a BackendOutcome: a connected
// non-blocking fd plus bytes to send before any of the client's, or a failure with a detail
// for the log. The session's state machine knows nothing of how the fd came to be.
//
// TcpConnector tries a backend's addresses in order (the attempt moves to the next address and
// reports nothing yet) and may put a PROXY header in BackendOutcome::preamble. ExecConnector
// (proxy/exec_connector.hpp) runs a program per session on a socketpair with UCSPI variables:
// its attempt completes at once, through its event, and the child's handle travels in
// BackendOutcome::child, kept by the session for the link's life. How long the session waits in
// all is the connector's say (timeout()); the session's one timer enforces it
// (proxy/deadlines.hpp) as a backstop to the attempt's own.
//
// One connector per backend for the whole process, shared by every worker: connect() is const
// and thread-safe; each attempt lives on the loop of the session that made it.

#include "proxy/child_reaper.hpp"
#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postern::proxy {

// What a session knows about its client when it asks for a backend. With accept_proxy the
// addresses are the PROXY header's (the balancer is not the client); a v2 LOCAL header (a
// health check) leaves them the socket's own.
struct ClientInfo {
    SocketAddress peer;            // the client; family AF_UNSPEC: no client (a local check)
    SocketAddress local;           // the address the client connected to
    std::string_view address;      // "203.0.113.7:50123", as logged
    std::string_view sni;          // empty: none sent, or still plaintext
    std::string_view hostname;     // the listener's own name (greetings; TCPLOCALHOST)
    const char* tls_version = "";  // "" while plaintext (a STARTTLS client allowed through)
    const char* cipher = "";
};

struct BackendRequest {
    event_base* base = nullptr;
    // The attempt's event calls this with `arg` (through proxy/trampoline.hpp); the session
    // then asks the attempt what happened (BackendAttempt::on_event).
    event_callback_fn callback = nullptr;
    void* arg = nullptr;
    ClientInfo client;
    // The worker's reaper, which watches the processes exec backends start (never null for
    // sessions; a connector that starts none ignores it).
    ChildReaper* children = nullptr;
};

struct BackendOutcome {
    UniqueFd fd;           // connected, non-blocking; invalid on failure
    std::string preamble;  // sent to the backend before any other byte (e.g. a PROXY header)
    std::string failure;   // why not, for the session's log line ("connect: ...")
    std::string served;    // which address it is, for the log ("10.0.0.6:143")
    // An exec backend's program: the session keeps it for the link's life; dropping it ends
    // the program (SIGTERM, then SIGKILL; proxy/child_reaper.hpp). Null for a TCP backend.
    std::unique_ptr<ChildProcess> child;
};

// One connection attempt in flight. Destroying it abandons the attempt (closes what it opened);
// that is safe from inside its own event's callback.
class BackendAttempt {
public:
    BackendAttempt() = default;
    BackendAttempt(const BackendAttempt&) = delete;
    BackendAttempt& operator=(const BackendAttempt&) = delete;
    BackendAttempt(BackendAttempt&&) = delete;
    BackendAttempt& operator=(BackendAttempt&&) = delete;
    virtual ~BackendAttempt() = default;

    // The attempt's event fired with `what`: true with `outcome` filled once it is decided,
    // false while it goes on (it re-armed its event).
    [[nodiscard]] virtual bool on_event(short what, BackendOutcome& outcome) = 0;
};

class BackendConnector {
public:
    BackendConnector() = default;
    BackendConnector(const BackendConnector&) = delete;
    BackendConnector& operator=(const BackendConnector&) = delete;
    BackendConnector(BackendConnector&&) = delete;
    BackendConnector& operator=(BackendConnector&&) = delete;
    virtual ~BackendConnector() = default;

    // How long a session waits for an attempt's outcome.
    [[nodiscard]] virtual std::chrono::milliseconds timeout() const noexcept = 0;
    // Starts an attempt; null with `failed.failure` set when it failed at once.
    [[nodiscard]] virtual std::unique_ptr<BackendAttempt> connect(const BackendRequest& request,
                                                                  BackendOutcome& failed) const = 0;
};

// A TCP connection to the first of a backend's addresses that answers, each given `timeout`
// (the attempt's own event times it out and moves on). An address that failed goes last for
// kDemotion, so a dead first address costs one timeout per 30 s rather than one per session;
// then it is tried in its place again. With send_proxy, the preamble is a PROXY v1/v2 header
// for the client (proxy/proxy_protocol.hpp).
class TcpConnector final : public BackendConnector,
                           public std::enable_shared_from_this<TcpConnector> {
public:
    static constexpr std::chrono::seconds kDemotion{30};

    struct Target {
        SocketAddress address;
        std::string text;  // as configured, for the log: "10.0.0.5:143"
    };
    TcpConnector(std::string name, std::vector<Target> targets, std::chrono::milliseconds timeout,
                 conf::ProxyHeader send_proxy = conf::ProxyHeader::None);

    // Every address's timeout, and a second for the loop: the session's backstop.
    [[nodiscard]] std::chrono::milliseconds timeout() const noexcept override;
    [[nodiscard]] std::unique_ptr<BackendAttempt> connect(const BackendRequest& request,
                                                          BackendOutcome& failed) const override;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::vector<Target>& targets() const noexcept { return targets_; }
    [[nodiscard]] std::chrono::milliseconds address_timeout() const noexcept { return timeout_; }
    [[nodiscard]] conf::ProxyHeader send_proxy() const noexcept { return send_proxy_; }
    // Indexes into targets() in the order the next attempt tries them.
    [[nodiscard]] std::vector<std::size_t> order() const;
    void failed(std::size_t index) const noexcept;
    void served(std::size_t index) const noexcept;
    // Failures of the address at `index` that were its fault, since startup (the metrics).
    [[nodiscard]] std::uint64_t failures(std::size_t index) const noexcept {
        return failures_[index].load(std::memory_order_relaxed);
    }

private:
    using Clock = std::chrono::steady_clock;

    std::string name_;
    std::vector<Target> targets_;
    std::chrono::milliseconds timeout_;
    conf::ProxyHeader send_proxy_;
    // Per target: when it last failed (steady clock ticks), 0 when it served since. Shared by
    // every worker thread.
    mutable std::vector<std::atomic<Clock::rep>> failed_at_;
    mutable std::vector<std::atomic<std::uint64_t>> failures_;
};

}  // namespace postern::proxy
