#pragma once
// A Worker is one event loop with its listening sockets and the sessions they accepted. It
// owns every Session and destroys them only from its reaper event, never inside a session's
// own callback. Workers share nothing mutable but the certificate-store pointer, each SMTP
// backend's EHLO snapshot (proxy/backend_ehlo.hpp), each exec backend's stderr rate limit
// (proxy/stderr_log.hpp) and, with several workers, the Balancer's session counts and each
// worker's inbox of handed-over sockets (proxy/balancer.hpp), and the connection limits
// (proxy/client_limits.hpp: each socket's Admission travels with it to its session). The
// backends (proxy/backends.hpp) are built once by run() and shared. Each worker has its own
// ChildReaper for the programs its sessions run as exec backends (proxy/child_reaper.hpp).

#include "conf/config.hpp"
#include "protocols/machine.hpp"
#include "proxy/accept_pause.hpp"
#include "proxy/backend_connector.hpp"
#include "proxy/backend_ehlo.hpp"
#include "proxy/backends.hpp"
#include "proxy/balancer.hpp"
#include "proxy/byte_buffer.hpp"
#include "proxy/child_reaper.hpp"
#include "proxy/client_limits.hpp"
#include "proxy/endpoint.hpp"
#include "proxy/event.hpp"
#include "proxy/listen_sockets.hpp"
#include "proxy/metrics.hpp"
#include "tls/cert_source.hpp"
#include "tls/front_context.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace postern::proxy {

class Drain;
class Session;
class Worker;
struct ListenerContext;

// One listening socket of a listener on this worker (a listener usually has one per worker;
// inherited sockets may give a worker several, proxy/listen_sockets.hpp).
struct Acceptor {
    ListenerContext* context = nullptr;
    ListenerPtr listener;
    std::unique_ptr<AcceptPause> pause;  // after a failed accept() (EMFILE, ...)

    // libevent entry points (proxy/trampoline.hpp)
    void on_accept(evutil_socket_t fd, const sockaddr* peer);
    void on_error();
    void fail_internal(const char* what) const;
};

// One backend a listener's sessions may use: its name for the log, how to connect, and whether
// the machine sends the protocol's forwarding command (xclient).
struct BackendTarget {
    std::string name;
    std::shared_ptr<const BackendConnector> connector;
    bool xclient = false;
};

// Everything a session needs to know about the listener that accepted it; read-only.
struct ListenerContext {
    Worker* worker = nullptr;
    std::size_t index = 0;  // the same listener has the same index in every worker
    conf::ListenerSpec spec;
    std::string name;  // the listen address as configured: "127.0.0.1:993"
    // The default backend first, then each other one the routes name (backend_for()).
    std::vector<BackendTarget> backends;
    bool strict_sni = false;
    std::unique_ptr<tls::FrontContext> front;
    protocols::MachineSettings machine;
    // SMTP STARTTLS listeners: the backend's EHLO extensions (process-wide, any thread).
    const BackendEhlo* backend_ehlo = nullptr;
    std::vector<std::unique_ptr<Acceptor>> acceptors;
    // This worker's counts for this listener (proxy/metrics.hpp): written by its sessions on
    // this worker's thread, read by the scrape on the main thread.
    ListenerCounters counters;

    // The backend for a client that sent `server_name` (lower case; empty: none, or no TLS).
    [[nodiscard]] const BackendTarget& backend_for(std::string_view server_name) const;
};

class Worker {
public:
    // Worker `index`, accepting on its share of `sockets` for every listener; null with `error`
    // naming the listener when one cannot be set up. `limits`: shared by every worker, outlives
    // them all.
    [[nodiscard]] static std::unique_ptr<Worker> create(
        const conf::Config& config, const Backends& backends,
        std::shared_ptr<tls::CertSource> certs, const std::shared_ptr<tls::TicketKeys>& ticket_keys,
        ClientLimits& limits, ListenSockets& sockets, unsigned index, std::string& error);

    Worker(EventBasePtr base, std::shared_ptr<tls::CertSource> certs, ClientLimits& limits);
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    Worker(Worker&&) = delete;
    Worker& operator=(Worker&&) = delete;
    ~Worker();

    [[nodiscard]] event_base* base() const noexcept { return base_.get(); }
    // The store new handshakes use (reloads swap it).
    [[nodiscard]] std::shared_ptr<const tls::CertStore> certs() const { return certs_->current(); }
    [[nodiscard]] std::size_t session_count() const noexcept { return sessions_.size(); }
    // Fixed once created; the same listener has the same index in every worker.
    [[nodiscard]] const std::vector<std::unique_ptr<ListenerContext>>& listeners() const noexcept {
        return listeners_;
    }
    // Relay buffers, shared by this loop's sessions (no locking: one loop, one thread).
    [[nodiscard]] BufferPool& buffers() noexcept { return buffers_; }
    // The processes this loop's sessions run as exec backends (this thread only).
    [[nodiscard]] ChildReaper& children() noexcept { return children_; }

    // From now on, connections this worker accepts may go to a worker holding fewer sessions
    // (called by Balancer::attach).
    void balance_with(Balancer& balancer, std::size_t index) noexcept {
        balancer_ = &balancer;
        index_ = index;
    }
    // Takes over a socket another worker accepted on listener `listener` (any thread).
    void deliver(UniqueFd fd, std::size_t listener, std::string client_address,
                 Admission admission);
    // Starts the sockets delivered so far (from the inbox event, on this worker's thread).
    void on_inbox();

    // Asks for `session` to be destroyed once the current callback has returned.
    void retire(Session* session);
    void stop_accepting();
    // Ends every session at once (Session::stop), on whatever thread, once the loops stopped.
    void close_all_sessions();

    // The drain (proxy/drain.hpp). drain(), from any thread: on its own loop the worker stops
    // accepting, takes the sockets handed to it (they become sessions that drain too) and
    // drains its sessions; it tells `drain` each time it holds none. drained(), from any
    // thread: it does so now (a socket handed over later makes it false again).
    void drain(Drain& drain);
    [[nodiscard]] bool drained() const noexcept { return drained_.load(); }
    void on_drain();

    // Called by libevent through the listener trampolines.
    void on_accept(ListenerContext& listener, int fd, const sockaddr* peer);
    void on_accept_error(Acceptor& acceptor);
    // Destroys the retired sessions (from the reaper event, outside their callbacks).
    void reap();
    void fail_internal(const char* what) const;

private:
    struct Delivered {
        UniqueFd fd;
        std::size_t listener = 0;
        std::string client_address;
        Admission admission;
    };

    void adopt(ListenerContext& listener, UniqueFd fd, std::string client_address,
               Admission admission);
    void check_drained();
    [[nodiscard]] std::vector<Session*> open_sessions() const;
    void refuse(ListenerContext& listener, UniqueFd fd, Limit limit, const Admission& admission,
                const std::string& client_address) const;

    EventBasePtr base_;
    ChildReaper children_;  // after base_: its events go first; outlives the sessions
    std::shared_ptr<tls::CertSource> certs_;
    ClientLimits& limits_;
    BufferPool buffers_;
    std::vector<std::unique_ptr<ListenerContext>> listeners_;
    std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
    std::vector<Session*> retired_;
    EventPtr reaper_;
    Balancer* balancer_ = nullptr;
    std::size_t index_ = 0;
    std::mutex inbox_mutex_;
    std::vector<Delivered> inbox_;  // guarded by inbox_mutex_
    EventPtr inbox_event_;
    Drain* drain_ = nullptr;            // set before drain_event_ is activated
    bool draining_ = false;             // this worker's thread
    std::atomic<bool> drained_{false};  // written under inbox_mutex_
    EventPtr drain_event_;
};

}  // namespace postern::proxy
