#include "proxy/byte_buffer.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace postern::proxy {
namespace {

Chunk new_chunk(std::size_t size) {
    return std::make_unique_for_overwrite<char[]>(size);  // NOLINT(*-avoid-c-arrays)
}

}  // namespace

Chunk BufferPool::take() {
    if (free_.empty()) {
        return new_chunk(kChunk);
    }
    auto chunk = std::move(free_.back());
    free_.pop_back();
    return chunk;
}

void BufferPool::give(Chunk chunk) {
    if (free_.size() < max_free_) {
        free_.push_back(std::move(chunk));
    }
}

char* ByteBuffer::reserve(std::size_t wanted) {
    if (!data_) {
        if (wanted <= BufferPool::kChunk) {
            data_ = pool_->take();
            capacity_ = BufferPool::kChunk;
        } else {
            data_ = new_chunk(wanted);
            capacity_ = wanted;
        }
        begin_ = end_ = 0;
    } else if (capacity_ - end_ < wanted) {
        const std::size_t used = size();
        if (capacity_ - used >= wanted) {
            std::memmove(data_.get(), data_.get() + begin_, used);
        } else {
            // Rare: a dialogue reply larger than a chunk. The bigger array is not pooled.
            const std::size_t capacity = std::max(capacity_ * 2, used + wanted);
            auto bigger = new_chunk(capacity);
            std::memcpy(bigger.get(), data_.get() + begin_, used);
            release();
            data_ = std::move(bigger);
            capacity_ = capacity;
        }
        begin_ = 0;
        end_ = used;
    }
    return data_.get() + end_;
}

void ByteBuffer::append(std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    std::memcpy(reserve(bytes.size()), bytes.data(), bytes.size());
    commit(bytes.size());
}

void ByteBuffer::consume(std::size_t count) noexcept {
    begin_ += std::min(count, size());
    if (begin_ == end_) {
        release();
    }
}

void ByteBuffer::move_to(ByteBuffer& to) {
    if (empty()) {
        return;
    }
    if (to.empty() && to.pool_ == pool_) {
        to.release();
        to.data_ = std::move(data_);
        to.capacity_ = std::exchange(capacity_, 0);
        to.begin_ = std::exchange(begin_, 0);
        to.end_ = std::exchange(end_, 0);
        return;
    }
    to.append(view());
    clear();
}

void ByteBuffer::release() noexcept {
    if (data_) {
        if (capacity_ == BufferPool::kChunk) {
            try {
                pool_->give(std::move(data_));
            } catch (...) {  // NOLINT(bugprone-empty-catch): the chunk is simply freed
            }
        }
        data_.reset();
    }
    capacity_ = begin_ = end_ = 0;
}

}  // namespace postern::proxy
