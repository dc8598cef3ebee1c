#include "tests/bench/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace postern::bench {
namespace {

void append_escaped(std::string& out, std::string_view text) {
    for (const char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += '?';
                } else {
                    out += c;
                }
        }
    }
}

}  // namespace

void JsonLine::key(std::string_view k) {
    if (body_.size() > 1) {
        body_ += ',';
    }
    body_ += '"';
    append_escaped(body_, k);
    body_ += "\":";
}

JsonLine& JsonLine::add(std::string_view k, double value) {
    key(k);
    if (!std::isfinite(value)) {
        value = 0;
    }
    char buf[64];
    (void)std::snprintf(buf, sizeof(buf), "%.6g", value);
    body_ += buf;
    return *this;
}

JsonLine& JsonLine::add(std::string_view k, std::uint64_t value) {
    key(k);
    body_ += std::to_string(value);
    return *this;
}

JsonLine& JsonLine::add(std::string_view k, std::string_view value) {
    key(k);
    body_ += '"';
    append_escaped(body_, value);
    body_ += '"';
    return *this;
}

void JsonLine::print() const {
    const std::string line = str() + "\n";
    (void)std::fwrite(line.data(), 1, line.size(), stdout);
    (void)std::fflush(stdout);
}

Percentiles percentiles(std::vector<double> samples) {
    Percentiles p;
    if (samples.empty()) {
        return p;
    }
    std::sort(samples.begin(), samples.end());
    const auto rank = [&](double q) {
        const auto n = static_cast<double>(samples.size());
        const auto index = static_cast<std::size_t>(std::max(1.0, std::ceil(q * n))) - 1;
        return samples[std::min(index, samples.size() - 1)];
    };
    p.p50 = rank(0.50);
    p.p99 = rank(0.99);
    p.p999 = rank(0.999);
    p.mean =
        std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
    p.max = samples.back();
    return p;
}

}  // namespace postern::bench
