#include "proxy/balancer.hpp"

#include "proxy/worker.hpp"

namespace postern::proxy {

void Balancer::attach(std::size_t index, Worker& worker) {
    slots_[index].worker = &worker;
    worker.balance_with(*this, index);
}

std::size_t Balancer::place(std::size_t self) noexcept {
    std::size_t chosen = self;
    std::size_t fewest = count(self);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        const std::size_t n = count(i);
        if (n < fewest) {
            fewest = n;
            chosen = i;
        }
    }
    slots_[chosen].sessions.fetch_add(1, std::memory_order_relaxed);
    return chosen;
}

void Balancer::release(std::size_t index) noexcept {
    slots_[index].sessions.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace postern::proxy
