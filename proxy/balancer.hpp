#pragma once
// Spreads sessions over the workers by how many each holds. With SO_REUSEPORT alone the kernel
// hashes each connection onto a worker (400 sessions through 2 workers split 193/207 in one
// test), and with bulk transfers the busier worker capped the total. Here a worker that
// accepts a connection while another worker holds fewer sessions hands the socket over before
// reading a byte of it.
//
// The counts are atomics, so any worker thread may place a connection; a count covers sessions
// a worker holds and sockets on their way to it. Accepts at the same moment on several workers
// may leave them a few sessions apart; the next connections even that out.

#include <atomic>
#include <cstddef>
#include <vector>

namespace postern::proxy {

class Worker;

class Balancer {
public:
    explicit Balancer(std::size_t workers) : slots_(workers) {}

    // Worker `index` takes part from now on (tells the worker too). Before any loop runs.
    void attach(std::size_t index, Worker& worker);
    [[nodiscard]] Worker& worker(std::size_t index) const noexcept { return *slots_[index].worker; }

    // The worker that takes a connection `self` accepted: `self`, or the one holding the
    // fewest sessions if that is fewer than `self` holds. Counts it there.
    [[nodiscard]] std::size_t place(std::size_t self) noexcept;
    // A session of worker `index` ended (or a socket sent to it was dropped).
    void release(std::size_t index) noexcept;
    [[nodiscard]] std::size_t count(std::size_t index) const noexcept {
        return slots_[index].sessions.load(std::memory_order_relaxed);
    }

private:
    struct Slot {
        std::atomic<std::size_t> sessions{0};
        Worker* worker = nullptr;
    };
    std::vector<Slot> slots_;  // sized once: never moves
};

}  // namespace postern::proxy
