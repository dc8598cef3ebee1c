// The EHLO learner's dialogue (protocols/smtp_ehlo_probe.hpp), line by line: what it sends when,
// what it keeps, and the bound on a reply that never ends.

#include "protocols/smtp_ehlo_probe.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace postern::protocols {
namespace {

using Next = EhloProbe::Next;

TEST_CASE("ehlo probe: greeting, EHLO reply, QUIT reply") {
    EhloProbe p;
    CHECK(p.on_line("220-mx.backend.test ESMTP") == Next::Read);
    CHECK(p.on_line("220 more") == Next::SendEhlo);
    CHECK(p.on_line("250-mx.backend.test") == Next::Read);
    CHECK(p.on_line("250-PIPELINING") == Next::Read);
    CHECK(p.on_line("250-SIZE 10240000") == Next::Read);
    CHECK(p.on_line("250 CHUNKING") == Next::SendQuit);
    CHECK(p.take_extensions() ==
          std::vector<std::string>{"PIPELINING", "SIZE 10240000", "CHUNKING"});
    CHECK(p.on_line("221 2.0.0 Bye") == Next::Done);

    EhloProbe bare;  // a one-line EHLO reply: no extension
    CHECK(bare.on_line("220 x") == Next::SendEhlo);
    CHECK(bare.on_line("250 x") == Next::SendQuit);
    CHECK(bare.take_extensions().empty());
}

TEST_CASE("ehlo probe: refusals and non-replies fail") {
    EhloProbe greeting;
    CHECK(greeting.on_line("554 5.7.1 go away") == Next::Failed);
    CHECK(std::string_view(greeting.failure()) == "greeting is not 2xx");
    EhloProbe ehlo;
    CHECK(ehlo.on_line("220 x") == Next::SendEhlo);
    CHECK(ehlo.on_line("250-x") == Next::Read);
    CHECK(ehlo.on_line("550 no") == Next::Failed);
    CHECK(std::string_view(ehlo.failure()) == "EHLO refused");
    CHECK(ehlo.take_extensions().empty());
    EhloProbe junk;
    CHECK(junk.on_line("+OK pop3") == Next::Failed);
    CHECK(std::string_view(junk.failure()) == "not an SMTP reply");
}

// Before the bound, a backend answering "250-X" forever grew the learner's list until it ran
// out of memory: it was only cut after the last line.
TEST_CASE("ehlo probe: a reply that never ends fails at the limit, holding no more") {
    EhloProbe p;
    CHECK(p.on_line("220 x") == Next::SendEhlo);
    CHECK(p.on_line("250-x") == Next::Read);
    for (std::size_t i = 2; i <= EhloProbe::kMaxReplyLines; ++i) {
        REQUIRE(p.on_line("250-EXTENSION" + std::to_string(i)) == Next::Read);
    }
    CHECK(p.on_line("250-ONE-TOO-MANY") == Next::Failed);
    CHECK(std::string_view(p.failure()) == "EHLO reply over 64 lines");
    CHECK(p.take_extensions().empty());
    CHECK(p.on_line("250 END") == Next::Failed);

    // Exactly the limit is a reply like any other.
    EhloProbe full;
    CHECK(full.on_line("220 x") == Next::SendEhlo);
    CHECK(full.on_line("250-x") == Next::Read);
    for (std::size_t i = 2; i < EhloProbe::kMaxReplyLines; ++i) {
        REQUIRE(full.on_line("250-E" + std::to_string(i)) == Next::Read);
    }
    CHECK(full.on_line("250 LAST") == Next::SendQuit);
    CHECK(full.take_extensions().size() == EhloProbe::kMaxReplyLines - 1);

    EhloProbe greeting;  // read and dropped, but bounded the same way
    for (std::size_t i = 1; i <= EhloProbe::kMaxReplyLines; ++i) {
        REQUIRE(greeting.on_line("220-banner") == Next::Read);
    }
    CHECK(greeting.on_line("220-banner") == Next::Failed);
    CHECK(std::string_view(greeting.failure()) == "greeting over 64 lines");
}

}  // namespace
}  // namespace postern::protocols
