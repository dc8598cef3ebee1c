#include "protocols/capabilities.hpp"

#include "protocols/imap_syntax.hpp"
#include "protocols/text.hpp"

#include <algorithm>

namespace postern::protocols::capabilities {

namespace {

using text::iequals;

bool denied(std::string_view token, std::string_view a, std::string_view b) noexcept {
    return (!a.empty() && iequals(token, a)) || (!b.empty() && iequals(token, b));
}

constexpr std::string_view kCapability = "CAPABILITY";
constexpr std::string_view kPop3Ok = "+OK";
constexpr std::string_view kXclientCode = "[XCLIENT]";
// A reply line is at most 512 octets with its code and CRLF (RFC 5321 §4.5.3.1.5).
constexpr std::size_t kMaxExtension = 512 - 4 - 2;

bool is_smtp_withheld_keyword(std::string_view keyword) noexcept {
    return iequals(keyword, "STARTTLS") || is_identity_command(keyword);
}

// "AUTH PLAIN LOGIN" (RFC 4954 §3), or "AUTH=PLAIN LOGIN" as old Outlook clients expect it.
bool is_smtp_auth_keyword(std::string_view keyword) noexcept {
    return iequals(keyword, "AUTH") || text::istarts_with(keyword, "AUTH=");
}

// Where "[XCLIENT]" starts in a POP3 greeting, or npos: right after "+OK ", as a whole code.
std::size_t xclient_code_at(std::string_view content) noexcept {
    if (!text::istarts_with(content, kPop3Ok) || content.size() < kPop3Ok.size() + 1 ||
        content[kPop3Ok.size()] != ' ') {
        return std::string_view::npos;
    }
    const std::size_t at = kPop3Ok.size() + 1;
    const std::string_view code = content.substr(at, kXclientCode.size());
    const std::size_t after = at + kXclientCode.size();
    if (!iequals(code, kXclientCode) || (after < content.size() && content[after] != ' ')) {
        return std::string_view::npos;
    }
    return at;
}

// The SP-separated tokens of `list` for which `keep` is true, or std::nullopt when it kept all.
template <class Keep>
std::optional<std::string> keep_tokens(std::string_view list, Keep keep) {
    std::string out;
    bool removed = false;
    bool first = true;
    std::size_t pos = 0;
    while (pos <= list.size()) {
        std::size_t sp = list.find(' ', pos);
        if (sp == std::string_view::npos) {
            sp = list.size();
        }
        const std::string_view token = list.substr(pos, sp - pos);
        if (!keep(token)) {
            removed = true;
        } else {
            if (!first) {
                out.push_back(' ');
            }
            out.append(token);
            first = false;
        }
        pos = sp + 1;
    }
    if (!removed) {
        return std::nullopt;
    }
    return out;
}

// A plaintext client of a STARTTLS listener may not log in (postern refuses LOGIN and
// AUTHENTICATE until TLS) nor upgrade any more (the backend has seen its commands): no STARTTLS,
// no AUTH= mechanism, and LOGINDISABLED (RFC 9051 §6.2.3), whatever the backend, which sees a
// connection from postern, believes. SASL-IR and LOGIN-REFERRALS stay: they offer nothing alone.
std::string plaintext_list(std::string_view list) {
    auto kept = keep_tokens(list, [](std::string_view token) {
        return !iequals(token, "STARTTLS") && !iequals(token, "LOGINDISABLED") &&
               !text::istarts_with(token, "AUTH=");
    });
    std::string out = kept ? std::move(*kept) : std::string(list);
    if (!out.empty()) {
        out.push_back(' ');
    }
    return out.append("LOGINDISABLED");
}

// Splits `content` at [begin, end) into prefix + filtered list + suffix.
std::optional<std::string> rewrite(std::string_view line, std::size_t begin, std::size_t end,
                                   ImapReader reader) {
    const std::string_view content = text::strip_eol(line);
    const std::string_view list = content.substr(begin, end - begin);
    auto filtered = reader == ImapReader::Plaintext
                        ? std::optional<std::string>(plaintext_list(list))
                        : remove_tokens(list, "STARTTLS", "LOGINDISABLED");
    if (!filtered) {
        return std::nullopt;
    }
    if (filtered->empty() && begin > 0 && content[begin - 1] == ' ') {
        --begin;  // "[CAPABILITY]", not "[CAPABILITY ]"
    }
    std::string out;
    out.reserve(line.size());
    out.append(content.substr(0, begin)).append(*filtered).append(line.substr(end));
    return out;
}

}  // namespace

bool is_identity_command(std::string_view verb) noexcept {
    return iequals(verb, "XCLIENT") || iequals(verb, "XFORWARD") || iequals(verb, "XOIP");
}

std::optional<std::string> remove_tokens(std::string_view list, std::string_view denied_a,
                                         std::string_view denied_b) {
    return keep_tokens(list,
                       [&](std::string_view token) { return !denied(token, denied_a, denied_b); });
}

std::optional<std::string> filter_imap_line(std::string_view line, ImapReader reader) {
    const std::string_view content = text::strip_eol(line);
    // tag-or-"*" SP word SP rest: the grammar allows single spaces only, and so do we here,
    // which keeps the offsets we rewrite exact.
    const std::size_t sp1 = content.find(' ');
    if (sp1 == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t word_begin = sp1 + 1;
    std::size_t sp2 = content.find(' ', word_begin);
    const std::string_view word = content.substr(
        word_begin, (sp2 == std::string_view::npos ? content.size() : sp2) - word_begin);
    if (content.substr(0, sp1) == "*" && iequals(word, kCapability)) {
        if (sp2 == std::string_view::npos) {
            return std::nullopt;
        }
        return rewrite(line, sp2 + 1, content.size(), reader);
    }
    if (sp2 == std::string_view::npos || !imap_syntax::is_status_word(word)) {
        return std::nullopt;
    }
    const std::string_view code = content.substr(sp2 + 1);
    if (code.size() < 1 + kCapability.size() + 1 || code.front() != '[' ||
        !iequals(code.substr(1, kCapability.size()), kCapability) ||
        code[1 + kCapability.size()] != ' ') {
        return std::nullopt;
    }
    const std::size_t begin = sp2 + 1 + 1 + kCapability.size() + 1;
    const std::size_t close = content.find(']', begin);
    if (close == std::string_view::npos) {
        return std::nullopt;
    }
    return rewrite(line, begin, close, reader);
}

bool is_pop3_withheld(std::string_view line, bool plaintext_client) noexcept {
    const std::string_view word = text::split_word(text::strip_eol(line)).first;
    return iequals(word, "STLS") || is_identity_command(word) ||
           (plaintext_client && (iequals(word, "USER") || iequals(word, "SASL")));
}

std::optional<std::string> filter_pop3_greeting(std::string_view line) {
    const std::string_view content = text::strip_eol(line);
    const std::size_t at = xclient_code_at(content);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    // "+OK [XCLIENT] Dovecot ready." -> "+OK Dovecot ready."; "+OK [XCLIENT]" -> "+OK"
    std::size_t end = at + kXclientCode.size();
    std::size_t begin = at;
    if (end < content.size()) {
        ++end;  // the SP after the code
    } else {
        --begin;  // the SP before it
    }
    std::string out;
    out.reserve(line.size());
    out.append(line.substr(0, begin)).append(line.substr(end));
    return out;
}

bool pop3_greeting_offers_xclient(std::string_view line) noexcept {
    return xclient_code_at(text::strip_eol(line)) != std::string_view::npos;
}

bool is_smtp_withheld(std::string_view line, bool plaintext_client) noexcept {
    const std::string_view content = text::strip_eol(line);
    if (content.size() <= 4) {
        return false;
    }
    const std::string_view keyword = text::split_word(content.substr(4)).first;
    return is_smtp_withheld_keyword(keyword) || (plaintext_client && is_smtp_auth_keyword(keyword));
}

bool smtp_advertisable(std::string_view extension) noexcept {
    if (extension.empty() || extension.size() > kMaxExtension || extension.front() == ' ' ||
        !std::all_of(extension.begin(), extension.end(),
                     [](char c) { return c >= ' ' && c <= '~'; })) {
        return false;
    }
    const std::string_view keyword = text::split_word(extension).first;
    return !is_smtp_withheld_keyword(keyword) && !is_smtp_auth_keyword(keyword);
}

}  // namespace postern::protocols::capabilities
