// libFuzzer target for protocols/proxy_header.hpp, which reads the first bytes of connections
// from load balancers. The input is used twice: as bytes received, and as the fields of a
// Header that is built (v1 and v2) and parsed back. Invariants, besides "no crash, out-of-bounds
// read or UB": Invalid has a reason and consumes nothing; NeedMore is only answered below the
// v1/v2 bounds; Done consumes at most what arrived; a prefix's verdict (the cut chosen by the
// first byte) never contradicts the whole input's; a Done header built again parses back to
// itself; whatever Header is built, the bytes parse back as Done, whole, to that header less
// what the format cannot carry.

#include "protocols/proxy_header.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace ph = postern::protocols::proxy_header;

ph::Header local_header() {
    ph::Header h;
    h.local = true;
    return h;
}

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(
            std::fprintf(stderr, "proxy_header_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

ph::ParseResult parse_checked(std::string_view data, ph::Header& out) {
    const ph::Header before = out;
    ph::ParseResult r = ph::parse(data, out);
    switch (r.status) {
        case ph::Status::Invalid:
            require(!r.error.empty() && r.consumed == 0 && out == before);
            break;
        case ph::Status::NeedMore:
            require(r.error.empty() && r.consumed == 0 && out == before);
            require(data.size() < std::max(ph::kMaxV1Length, ph::kMaxV2Length));
            require(data.empty() || data[0] != 'P' || data.size() < ph::kMaxV1Length);
            break;
        case ph::Status::Done:
            require(r.error.empty() && r.consumed > 0 && r.consumed <= data.size());
            require(r.consumed <= (data[0] == 'P' ? ph::kMaxV1Length : ph::kMaxV2Length));
            require(!out.local || out == local_header());
            require(out.local || (out.source.family == out.destination.family &&
                                  (out.source.family == 4 || out.source.family == 6)));
            break;
    }
    return r;
}

// What a v2 (or, with `v1`, a v1) receiver can learn of `h`.
ph::Header expected_back(const ph::Header& h, bool v1) {
    const auto has_family = [](const ph::Address& a) { return a.family == 4 || a.family == 6; };
    if (h.local || !has_family(h.source) || !has_family(h.destination) ||
        (v1 && h.source.family != h.destination.family)) {
        return local_header();
    }
    ph::Header out = h;
    const bool mixed = h.source.family != h.destination.family;
    for (ph::Address* a : {&out.source, &out.destination}) {
        if (a->family == 4) {
            std::fill(a->bytes.begin() + 4, a->bytes.end(), 0);
            if (mixed) {  // sent as ::ffff:a.b.c.d
                std::copy_n(a->bytes.begin(), 4, a->bytes.begin() + 12);
                std::fill_n(a->bytes.begin(), 12, 0);
                a->bytes[10] = a->bytes[11] = 0xFF;
                a->family = 6;
            }
        }
    }
    if (v1 || !ph::is_authority(out.authority)) {
        out.authority.clear();
    }
    if (v1) {
        out.tls.reset();
    } else if (out.tls) {
        for (std::string* s : {&out.tls->version, &out.tls->cipher}) {
            if (!ph::is_tlv_string(*s)) {
                s->clear();
            }
        }
    }
    return out;
}

void check_round_trip(const std::string& bytes, const ph::Header& expected) {
    ph::Header back;
    const ph::ParseResult r = parse_checked(bytes, back);
    require(r.status == ph::Status::Done && r.consumed == bytes.size() && back == expected);
}

// Fields taken from the input in order; missing bytes read as zero.
struct Reader {
    std::string_view in;
    std::uint8_t byte() {
        if (in.empty()) {
            return 0;
        }
        const auto b = static_cast<std::uint8_t>(in[0]);
        in.remove_prefix(1);
        return b;
    }
    std::string text() {
        const std::size_t n = std::min<std::size_t>(byte(), in.size());
        std::string s(in.substr(0, n));
        in.remove_prefix(n);
        return s;
    }
    ph::Address address() {
        ph::Address a;
        const std::uint8_t f = byte();
        // Mostly 4 or 6; now and then 0 or junk.
        a.family = static_cast<std::uint8_t>(f < 0xF0 ? (f % 2 == 0 ? 4 : 6) : f - 0xF0);
        for (auto& b : a.bytes) {
            b = byte();
        }
        const std::uint8_t high = byte();
        a.port = static_cast<std::uint16_t>(high << 8U | byte());
        return a;
    }
};

void check_builders(std::string_view in) {
    Reader reader{in};
    ph::Header h;
    const std::uint8_t flags = reader.byte();
    h.local = (flags & 1U) != 0;
    h.source = reader.address();
    h.destination = reader.address();
    h.authority = reader.text();
    if ((flags & 2U) != 0) {
        h.tls = ph::TlsInfo{reader.text(), reader.text()};
    }
    check_round_trip(ph::build_v2(h), expected_back(h, false));
    check_round_trip(ph::build_v1(h), expected_back(h, true));
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in{reinterpret_cast<const char*>(data), size};
    ph::Header whole;
    const ph::ParseResult r = parse_checked(in, whole);

    const std::size_t cut = size == 0 ? 0 : static_cast<std::size_t>(data[0]) * 9 % (size + 1);
    ph::Header part;
    const ph::ParseResult p = parse_checked(in.substr(0, cut), part);
    if (p.status == ph::Status::Invalid) {
        require(r.status == ph::Status::Invalid);
    }
    if (p.status == ph::Status::Done) {
        require(r.status == ph::Status::Done && r.consumed == p.consumed && whole == part);
    }
    if (r.status == ph::Status::NeedMore) {
        require(p.status == ph::Status::NeedMore);
    }
    if (r.status == ph::Status::Done) {
        require(p.status == (cut < r.consumed ? ph::Status::NeedMore : ph::Status::Done));
        check_round_trip(ph::build_v2(whole), whole);
        check_round_trip(ph::build_v1(whole), expected_back(whole, true));
    }
    check_builders(in);
    return 0;
}
