#pragma once
// What the generator prints: one JSON object per line (scripts/bench reads them), and the
// percentiles of a set of samples.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::bench {

// Builds one flat JSON object: numbers and strings only, keys in insertion order.
class JsonLine {
public:
    JsonLine& add(std::string_view key, double value);
    JsonLine& add(std::string_view key, std::uint64_t value);
    JsonLine& add(std::string_view key, std::string_view value);
    // Writes the object and a newline to stdout and flushes, so a reader sees it at once.
    void print() const;
    [[nodiscard]] std::string str() const { return body_ + "}"; }

private:
    void key(std::string_view k);
    std::string body_ = "{";
};

struct Percentiles {
    double p50 = 0;
    double p99 = 0;
    double p999 = 0;
    double mean = 0;
    double max = 0;
};

// Nearest-rank percentiles; all zero for no samples.
[[nodiscard]] Percentiles percentiles(std::vector<double> samples);

}  // namespace postern::bench
