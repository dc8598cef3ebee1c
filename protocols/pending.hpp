#pragma once
// PendingQueue remembers, in order, what kind of command each backend reply still to come
// answers (POP3 and SMTP replies carry no tag: RFC 2449 §6.6 and RFC 2920 §3 keep them in
// command order). Its length is bounded by the machine (kMaxPending), which stops reading
// client commands when it is full instead of growing without limit.

#include <cstddef>
#include <vector>

namespace postern::protocols {

template <class T>
class PendingQueue {
public:
    [[nodiscard]] bool empty() const noexcept { return head_ == items_.size(); }
    [[nodiscard]] std::size_t size() const noexcept { return items_.size() - head_; }
    [[nodiscard]] T front() const noexcept { return items_[head_]; }  // only when !empty()

    void push(T item) { items_.push_back(item); }

    void pop() noexcept {  // only when !empty()
        if (++head_ == items_.size()) {
            items_.clear();  // keeps capacity; the common case is one command in flight
            head_ = 0;
        } else if (head_ >= kCompactAfter) {
            // A client that always keeps a command in flight never drains the queue; drop
            // the answered entries now and then so memory stays bounded by kMaxPending.
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

private:
    static constexpr std::size_t kCompactAfter = 64;

    std::vector<T> items_;
    std::size_t head_ = 0;
};

}  // namespace postern::protocols
