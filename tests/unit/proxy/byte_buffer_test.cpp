#include "proxy/byte_buffer.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <string_view>

using postern::proxy::BufferPool;
using postern::proxy::ByteBuffer;

TEST_CASE("byte_buffer: an empty buffer holds no storage; a drained one gives it back") {
    BufferPool pool;
    {
        ByteBuffer b(pool);
        CHECK(b.empty());
        CHECK(b.spare() == BufferPool::kChunk);
        b.append("a1 NOOP\r\n");
        CHECK(b.view() == "a1 NOOP\r\n");
        CHECK(pool.free_chunks() == 0);
        b.consume(3);
        CHECK(b.view() == "NOOP\r\n");
        b.consume(100);  // more than held: just empties it
        CHECK(b.empty());
        CHECK(pool.free_chunks() == 1);
    }
    ByteBuffer again(pool);
    again.append("x");
    CHECK(pool.free_chunks() == 0);  // the chunk was reused, not allocated
}

TEST_CASE("byte_buffer: reserve and commit, compacting before growing") {
    BufferPool pool;
    ByteBuffer b(pool);
    char* at = b.reserve(10);
    std::string_view("0123456789").copy(at, 10);
    b.commit(10);
    CHECK(b.spare() == BufferPool::kChunk - 10);
    b.consume(8);
    // Room at the end is short by the 8 consumed bytes: reserve moves the rest to the front.
    const std::size_t wanted = BufferPool::kChunk - 2;
    at = b.reserve(wanted);
    std::memset(at, 'z', wanted);
    b.commit(wanted);
    CHECK(b.size() == BufferPool::kChunk);
    CHECK(b.view().substr(0, 3) == "89z");
    CHECK(b.spare() == 0);
}

TEST_CASE("byte_buffer: a reply larger than a chunk grows the buffer, which is not pooled") {
    BufferPool pool;
    ByteBuffer b(pool);
    const std::string big(BufferPool::kChunk + 100, 'q');
    b.append("head ");
    CHECK(pool.free_chunks() == 0);
    b.append(big);
    CHECK(pool.free_chunks() == 1);  // the chunk it outgrew went back
    CHECK(b.size() == big.size() + 5);
    CHECK(b.view().substr(0, 6) == "head q");
    CHECK(b.view().back() == 'q');
    b.clear();
    CHECK(pool.free_chunks() == 1);  // the big array is freed, not pooled
}

TEST_CASE("byte_buffer: move_to hands the storage over when the target is empty") {
    BufferPool pool;
    ByteBuffer from(pool);
    ByteBuffer to(pool);
    from.append("abc");
    const char* storage = from.data();
    from.move_to(to);
    CHECK(from.empty());
    CHECK(to.view() == "abc");
    CHECK(to.data() == storage);
    from.append("def");
    from.move_to(to);  // target not empty: appended
    CHECK(to.view() == "abcdef");
    CHECK(from.empty());
}

TEST_CASE("byte_buffer: the pool keeps at most its limit of free chunks") {
    BufferPool pool(1);
    {
        ByteBuffer a(pool);
        ByteBuffer b(pool);
        a.append("a");
        b.append("b");
    }
    CHECK(pool.free_chunks() == 1);
}
