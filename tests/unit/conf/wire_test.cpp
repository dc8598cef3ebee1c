// conf/wire.hpp: the byte form between postern and its privileged helper. A count is refused
// before anything is sized by it when the bytes left could not hold that many items, so a
// decoder given a few bytes never allocates for billions (or thousands) of entries.

#include "conf/wire.hpp"

#include <doctest/doctest.h>

#include <string>

namespace postern::conf {

TEST_CASE("wire: a count is at most its bound and what the bytes left could hold") {
    Writer out;
    out.u32(3);
    out.str("a");
    out.str("b");
    out.str("c");
    const std::string three = out.take();
    std::size_t count = 0;
    Reader fits{three};
    CHECK(fits.count(count, 4096, 4));
    CHECK(count == 3);
    Reader too_big_items{three};  // 15 bytes left cannot hold 3 items of 8
    CHECK_FALSE(too_big_items.count(count, 4096, 8));
    Reader bound{three};
    CHECK_FALSE(bound.count(count, 2, 4));

    for (const std::size_t announced : {std::size_t{4096}, std::size_t{0xFFFFFFFFU}}) {
        Writer lie;
        lie.u32(announced);
        lie.str("only one");
        const std::string bytes = lie.take();
        Reader in{bytes};
        CHECK_FALSE(in.count(count, 0xFFFFFFFFU, 4));
    }
    Writer none;
    none.u32(0);
    const std::string empty_list = none.take();
    Reader zero{empty_list};
    CHECK(zero.count(count, 4096, 4));
    CHECK(count == 0);
    CHECK(zero.done());
}

}  // namespace postern::conf
