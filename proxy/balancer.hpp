#pragma once
// Spreads sessions over the workers by how many each holds. With SO_REUSEPORT alone the kernel
// hashes each connection onto a worker, so 64 long-lived sessions split 40/24 as often as not
// and the busier worker caps the throughput. Here a worker that accepts a connection while
// another worker holds fewer sessions hands the socket over before reading a byte of it.
//
// The counts are atomics, so any worker thread may place a connection; a count covers sessions
// a worker holds and sockets on their way to it. Accepts at the same moment on several workers
// may leave them a few sessions apart; the next connections even that out.

#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

namespace postern::proxy {

class Worker;

class Balancer {
public:
    explicit Balancer(std::size_t workers)
        : size_(workers),
          counts_(std::make_unique<std::atomic<std::size_t>[]>(workers)),  // NOLINT(*-c-arrays)
          workers_(workers) {}

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    void attach(std::size_t index, Worker& worker) noexcept { workers_[index] = &worker; }
    [[nodiscard]] Worker& worker(std::size_t index) const noexcept { return *workers_[index]; }

    // The worker that takes a connection `self` accepted: `self`, or the one holding the
    // fewest sessions if that is fewer than `self` holds. Counts it there.
    [[nodiscard]] std::size_t place(std::size_t self) noexcept;
    // A session of worker `index` ended (or a socket sent to it was dropped).
    void release(std::size_t index) noexcept;
    [[nodiscard]] std::size_t count(std::size_t index) const noexcept {
        return counts_[index].load(std::memory_order_relaxed);
    }

private:
    std::size_t size_;
    std::unique_ptr<std::atomic<std::size_t>[]> counts_;  // NOLINT(*-avoid-c-arrays)
    std::vector<Worker*> workers_;
};

}  // namespace postern::proxy
