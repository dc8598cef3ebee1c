#include "proxy/balancer.hpp"

#include <doctest/doctest.h>

using postern::proxy::Balancer;

TEST_CASE("balancer: a worker keeps a connection unless another holds fewer sessions") {
    Balancer b(3);
    CHECK(b.place(0) == 0);  // all equal: the worker that accepted keeps it
    CHECK(b.place(0) == 1);  // 1 0 0: the first of the emptiest takes it
    CHECK(b.place(0) == 2);  // 1 1 0
    CHECK(b.place(1) == 1);  // 1 1 1: equal again
    CHECK(b.count(0) == 1);
    CHECK(b.count(1) == 2);
    CHECK(b.count(2) == 1);
}

TEST_CASE("balancer: connections that all land on one worker end up spread evenly") {
    Balancer b(2);
    for (int i = 0; i < 101; ++i) {
        (void)b.place(0);  // as if the kernel's hash sent every one of them to worker 0
    }
    CHECK(b.count(0) == 51);
    CHECK(b.count(1) == 50);
}

TEST_CASE("balancer: ended sessions free their place") {
    Balancer b(2);
    CHECK(b.place(1) == 1);
    CHECK(b.place(1) == 0);
    CHECK(b.place(1) == 1);  // 1 2
    b.release(1);
    b.release(1);  // 1 0
    CHECK(b.place(0) == 1);
    CHECK(b.count(0) == 1);
    CHECK(b.count(1) == 1);
}
