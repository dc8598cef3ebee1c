#pragma once
// The bytes a session holds for one direction. Storage is taken from the worker's BufferPool
// when bytes arrive and handed back the moment the buffer drains, so an idle session holds no
// buffer at all and a busy one does not touch the heap on the hot path.

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

namespace postern::proxy {

// A heap byte array whose size is known only at run time.
using Chunk = std::unique_ptr<char[]>;  // NOLINT(*-avoid-c-arrays)

class BufferPool {
public:
    // The size of every pooled chunk: two full TLS records, so one read from the backend
    // becomes two 16 KiB records and not a dozen small ones.
    static constexpr std::size_t kChunk = std::size_t{32} * 1024;

    explicit BufferPool(std::size_t max_free = 256) : max_free_(max_free) {}

    [[nodiscard]] Chunk take();
    void give(Chunk chunk);
    [[nodiscard]] std::size_t free_chunks() const noexcept { return free_.size(); }

private:
    std::size_t max_free_;
    std::vector<Chunk> free_;
};

class ByteBuffer {
public:
    explicit ByteBuffer(BufferPool& pool) noexcept : pool_(&pool) {}
    ByteBuffer(const ByteBuffer&) = delete;
    ByteBuffer& operator=(const ByteBuffer&) = delete;
    ByteBuffer(ByteBuffer&&) = delete;
    ByteBuffer& operator=(ByteBuffer&&) = delete;
    ~ByteBuffer() { release(); }

    [[nodiscard]] bool empty() const noexcept { return begin_ == end_; }
    [[nodiscard]] std::size_t size() const noexcept { return end_ - begin_; }
    [[nodiscard]] const char* data() const noexcept { return data_.get() + begin_; }
    [[nodiscard]] std::string_view view() const noexcept { return {data(), size()}; }

    // Room for at least `wanted` more bytes at the end (taken from the pool or grown); returns
    // where to write. Call commit() with what was written.
    [[nodiscard]] char* reserve(std::size_t wanted);
    // How much reserve() can offer without growing past a pooled chunk.
    [[nodiscard]] std::size_t spare() const noexcept {
        return data_ ? capacity_ - size() : BufferPool::kChunk;
    }
    void commit(std::size_t written) noexcept { end_ += written; }

    void append(std::string_view bytes);
    // Drops `count` bytes from the front; the storage goes back to the pool once empty.
    void consume(std::size_t count) noexcept;
    // Moves everything into `to` (cheaply when `to` is empty).
    void move_to(ByteBuffer& to);
    void clear() noexcept { consume(size()); }

private:
    void release() noexcept;

    BufferPool* pool_;
    Chunk data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

}  // namespace postern::proxy
