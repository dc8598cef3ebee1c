#include "protocols/imap_id.hpp"

#include "protocols/text.hpp"

#include <optional>
#include <vector>

namespace postern::protocols::imap_id {

namespace {

using text::iequals;
using text::istarts_with;

constexpr std::string_view kNil = "NIL";

// A cursor over one line's content (terminator stripped); every read stays inside it.
class Reader {
public:
    explicit Reader(std::string_view content) : s_(content) {}

    [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
    [[nodiscard]] bool at_end() const noexcept { return pos_ == s_.size(); }
    [[nodiscard]] std::string_view slice(std::size_t from) const {
        return s_.substr(from, pos_ - from);
    }

    // One or more SP; false (nothing read) when there is none.
    bool spaces() noexcept {
        const std::size_t from = pos_;
        while (pos_ < s_.size() && s_[pos_] == ' ') {
            ++pos_;
        }
        return pos_ > from;
    }

    bool take(char c) noexcept {
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }

    // Bytes up to the next SP (tag, verb).
    std::string_view word() noexcept {
        const std::size_t from = pos_;
        while (pos_ < s_.size() && s_[pos_] != ' ') {
            ++pos_;
        }
        return slice(from);
    }

    // "NIL" as a whole token: followed by SP, ")" or the end.
    bool nil() noexcept {
        if (!istarts_with(s_.substr(pos_), kNil)) {
            return false;
        }
        const std::size_t after = pos_ + kNil.size();
        if (after < s_.size() && s_[after] != ' ' && s_[after] != ')') {
            return false;
        }
        pos_ = after;
        return true;
    }

    // A quoted string (RFC 9051 §4.3: quoted-specials are escaped, nothing else is), decoded.
    std::optional<std::string> quoted() {
        if (!take('"')) {
            return std::nullopt;
        }
        std::string value;
        while (pos_ < s_.size()) {
            const char c = s_[pos_++];
            if (c == '"') {
                return value;
            }
            if (c == '\\') {
                if (pos_ == s_.size() || (s_[pos_] != '"' && s_[pos_] != '\\')) {
                    return std::nullopt;
                }
                value.push_back(s_[pos_++]);
            } else if (c == '\r' || c == '\n') {
                return std::nullopt;
            } else {
                value.push_back(c);
            }
        }
        return std::nullopt;  // no closing quote
    }

private:
    std::string_view s_;
    std::size_t pos_ = 0;
};

}  // namespace

bool is_forwarding_field(std::string_view name) noexcept {
    for (const std::string_view prefix : {"x-originating-", "x-connected-", "x-forward-"}) {
        if (istarts_with(name, prefix)) {
            return true;
        }
    }
    for (const std::string_view field :
         {"x-proxy-ttl", "x-session-id", "x-session-ext-id", "x-client-transport", "x-multiplex"}) {
        if (iequals(name, field)) {
            return true;
        }
    }
    return false;
}

Filtered filter_command(std::string_view line) {
    const std::string_view content = text::strip_eol(line);
    Reader r(content);
    const std::string_view tag = r.word();
    if (tag.empty() || !r.spaces()) {
        return {};
    }
    const std::string_view verb = r.word();
    if (!iequals(verb, "ID") || !r.spaces()) {
        return {};
    }
    if (r.nil()) {
        r.spaces();
        return r.at_end() ? Filtered{Filtered::Verdict::Unchanged, {}} : Filtered{};
    }
    if (!r.take('(')) {
        return {};
    }
    std::vector<std::string_view> kept;  // "key SP value" as sent
    bool removed = false;
    r.spaces();
    while (!r.take(')')) {
        const std::size_t from = r.pos();
        const auto name = r.quoted();
        if (!name || !r.spaces() || (!r.nil() && !r.quoted())) {
            return {};
        }
        if (is_forwarding_field(*name)) {
            removed = true;
        } else {
            kept.push_back(r.slice(from));
        }
        // Pairs are separated by SP; ")" may follow at once.
        if (!r.spaces() && !(r.pos() < content.size() && content[r.pos()] == ')')) {
            return {};
        }
    }
    r.spaces();
    if (!r.at_end()) {
        return {};
    }
    if (!removed) {
        return {Filtered::Verdict::Unchanged, {}};
    }
    std::string out;
    out.reserve(line.size());
    out.append(tag).append(" ").append(verb).append(" ");
    if (kept.empty()) {
        out.append(kNil);
    } else {
        out.push_back('(');
        for (std::size_t i = 0; i < kept.size(); ++i) {
            out.append(i == 0 ? "" : " ").append(kept[i]);
        }
        out.push_back(')');
    }
    out.append(text::eol_of(line));
    return {Filtered::Verdict::Rewritten, std::move(out)};
}

}  // namespace postern::protocols::imap_id
