#pragma once
// The byte form of what crosses between postern's main process and its privileged helper
// (conf::FileSnapshot, proxy/helper_orders.hpp): little-endian u32 lengths and counts, strings
// as length + bytes. A Reader refuses to read past its end, so a truncated message fails.

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::conf {

// The least bytes a u32 or a string (its length alone) takes on the wire.
inline constexpr std::size_t kWireWord = 4;

class Writer {
public:
    void u32(std::size_t value) {
        for (int shift = 0; shift < 32; shift += 8) {
            out_.push_back(static_cast<char>((value >> shift) & 0xFFU));
        }
    }
    void str(std::string_view text) {
        u32(text.size());
        out_.append(text);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    bool u32(std::size_t& value) {
        if (in_.size() < 4) {
            return false;
        }
        value = 0;
        for (int i = 3; i >= 0; --i) {
            value = (value << 8U) | static_cast<unsigned char>(in_[static_cast<std::size_t>(i)]);
        }
        in_.remove_prefix(4);
        return true;
    }
    bool str(std::string& text) {
        std::size_t size = 0;
        if (!u32(size) || in_.size() < size) {
            return false;
        }
        text.assign(in_.substr(0, size));
        in_.remove_prefix(size);
        return true;
    }
    // A count of items that each take at least `item_bytes` of what follows: refused above `max`
    // or beyond what the bytes left could hold, so a list sized by it before its items are read
    // stays in proportion to the input (4096 strings announced in 40 bytes are refused here).
    bool count(std::size_t& value, std::size_t max, std::size_t item_bytes) {
        std::size_t announced = 0;
        if (!u32(announced) || announced > max || announced > in_.size() / item_bytes) {
            return false;
        }
        value = announced;
        return true;
    }
    [[nodiscard]] bool done() const { return in_.empty(); }

private:
    std::string_view in_;
};

}  // namespace postern::conf
