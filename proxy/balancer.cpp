#include "proxy/balancer.hpp"

namespace postern::proxy {

std::size_t Balancer::place(std::size_t self) noexcept {
    std::size_t chosen = self;
    std::size_t fewest = count(self);
    for (std::size_t i = 0; i < size_; ++i) {
        const std::size_t n = count(i);
        if (n < fewest) {
            fewest = n;
            chosen = i;
        }
    }
    counts_[chosen].fetch_add(1, std::memory_order_relaxed);
    return chosen;
}

void Balancer::release(std::size_t index) noexcept {
    counts_[index].fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace postern::proxy
