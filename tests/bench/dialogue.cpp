#include "tests/bench/dialogue.hpp"

#include <algorithm>
#include <charconv>

namespace postern::bench {
namespace {

constexpr std::size_t kMaxLine = 64 * 1024;
constexpr std::string_view kEhlo = "EHLO bench.client\r\n";

Step send(std::string text) {
    return Step{.kind = Step::Kind::Send, .text = std::move(text), .expect = {}};
}

Step expect(ReplyShape shape, std::string tag = {}) {
    return Step{.kind = Step::Kind::Expect, .text = {}, .expect = {shape, std::move(tag)}};
}

Step start_tls() {
    return Step{.kind = Step::Kind::StartTls, .text = {}, .expect = {}};
}

ReplyShape greeting(Protocol protocol) {
    switch (protocol) {
        case Protocol::Imap:
            return ReplyShape::ImapGreeting;
        case Protocol::Pop3:
            return ReplyShape::Pop3Line;
        case Protocol::Smtp:
            return ReplyShape::SmtpReply;
    }
    return ReplyShape::ImapGreeting;
}

// "{123}" or "{123+}" at the end of a line (CRLF already removed): the literal's size.
std::optional<std::uint64_t> literal_at_end(std::string_view line) {
    if (line.empty() || line.back() != '}') {
        return std::nullopt;
    }
    const std::size_t open = line.rfind('{');
    if (open == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view digits = line.substr(open + 1, line.size() - open - 2);
    if (!digits.empty() && digits.back() == '+') {
        digits.remove_suffix(1);
    }
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty()) {
        return std::nullopt;
    }
    return n;
}

std::string_view strip_eol(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
        line.remove_suffix(1);
    }
    return line;
}

}  // namespace

std::string_view to_string(Protocol protocol) noexcept {
    switch (protocol) {
        case Protocol::Imap:
            return "imap";
        case Protocol::Pop3:
            return "pop3";
        case Protocol::Smtp:
            return "smtp";
    }
    return "unknown";
}

std::string_view to_string(TlsMode tls) noexcept {
    switch (tls) {
        case TlsMode::None:
            return "none";
        case TlsMode::Implicit:
            return "implicit";
        case TlsMode::StartTls:
            return "starttls";
    }
    return "unknown";
}

Script connect_script(Protocol protocol, TlsMode tls) {
    Script s;
    if (tls == TlsMode::Implicit) {
        s.push_back(start_tls());
    }
    s.push_back(expect(greeting(protocol)));
    if (tls != TlsMode::StartTls) {
        return s;
    }
    switch (protocol) {
        case Protocol::Imap:  // RFC 9051 §6.2.1
            s.push_back(send("s STARTTLS\r\n"));
            s.push_back(expect(ReplyShape::ImapTagged, "s"));
            s.push_back(start_tls());
            s.push_back(send("c NOOP\r\n"));
            s.push_back(expect(ReplyShape::ImapTagged, "c"));
            break;
        case Protocol::Pop3:  // RFC 2595 §4
            s.push_back(send("STLS\r\n"));
            s.push_back(expect(ReplyShape::Pop3Line));
            s.push_back(start_tls());
            s.push_back(send("CAPA\r\n"));
            s.push_back(expect(ReplyShape::Pop3Multi));
            break;
        case Protocol::Smtp:  // RFC 3207 §4, §4.2: EHLO again after TLS
            s.push_back(send(std::string(kEhlo)));
            s.push_back(expect(ReplyShape::SmtpReply));
            s.push_back(send("STARTTLS\r\n"));
            s.push_back(expect(ReplyShape::SmtpReply));
            s.push_back(start_tls());
            s.push_back(send(std::string(kEhlo)));
            s.push_back(expect(ReplyShape::SmtpReply));
            break;
    }
    return s;
}

void append_login(Script& script, Protocol protocol, TlsMode tls) {
    switch (protocol) {
        case Protocol::Imap:
            script.push_back(send("a LOGIN bench bench\r\n"));
            script.push_back(expect(ReplyShape::ImapTagged, "a"));
            break;
        case Protocol::Pop3:
            script.push_back(send("USER bench\r\n"));
            script.push_back(expect(ReplyShape::Pop3Line));
            script.push_back(send("PASS bench\r\n"));
            script.push_back(expect(ReplyShape::Pop3Line));
            break;
        case Protocol::Smtp:
            if (tls != TlsMode::StartTls) {
                script.push_back(send(std::string(kEhlo)));
                script.push_back(expect(ReplyShape::SmtpReply));
            }
            // RFC 4616: "\0bench\0bench"
            script.push_back(send("AUTH PLAIN AGJlbmNoAGJlbmNo\r\n"));
            script.push_back(expect(ReplyShape::SmtpReply));
            break;
    }
}

Request noop_request(Protocol protocol, std::uint64_t seq) {
    switch (protocol) {
        case Protocol::Imap: {
            std::string tag = "n" + std::to_string(seq);
            std::string command = tag + " NOOP\r\n";
            return Request{std::move(command), {ReplyShape::ImapTagged, std::move(tag)}};
        }
        case Protocol::Pop3:
            return Request{"NOOP\r\n", {ReplyShape::Pop3Line, {}}};
        case Protocol::Smtp:
            return Request{"NOOP\r\n", {ReplyShape::SmtpReply, {}}};
    }
    return {};
}

std::optional<Request> bulk_request(Protocol protocol, std::uint64_t seq, std::uint64_t bytes) {
    switch (protocol) {
        case Protocol::Imap: {
            std::string tag = "b" + std::to_string(seq);
            std::string command = tag + " XBULK " + std::to_string(bytes) + "\r\n";
            return Request{std::move(command), {ReplyShape::ImapTagged, std::move(tag)}};
        }
        case Protocol::Pop3:
            return Request{"XBULK " + std::to_string(bytes) + "\r\n", {ReplyShape::Pop3Multi, {}}};
        case Protocol::Smtp:
            return std::nullopt;
    }
    return std::nullopt;
}

void ReplyReader::expect(Expectation expectation) {
    expect_ = std::move(expectation);
    partial_.clear();
    literal_left_ = 0;
    continuing_ = false;
    tagged_ = false;
    tagged_ok_ = false;
    body_ = false;
    payload_ = 0;
    error_.clear();
}

ReplyReader::Result ReplyReader::feed(std::string_view data) {
    std::size_t pos = 0;
    while (pos < data.size()) {
        if (literal_left_ > 0) {
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(literal_left_, data.size() - pos));
            literal_left_ -= n;
            payload_ += n;
            pos += n;
            continue;
        }
        const std::size_t nl = data.find('\n', pos);
        if (nl == std::string_view::npos) {
            partial_.append(data.substr(pos));
            if (partial_.size() > kMaxLine) {
                return {fail(partial_), data.size()};
            }
            return {Status::NeedMore, data.size()};
        }
        std::string_view line = data.substr(pos, nl + 1 - pos);
        if (!partial_.empty()) {
            partial_.append(line);
            line = partial_;
        }
        pos = nl + 1;
        const Status status = on_line(line);
        partial_.clear();
        if (status != Status::NeedMore) {
            return {status, pos};
        }
    }
    return {Status::NeedMore, pos};
}

ReplyReader::Status ReplyReader::fail(std::string_view line) {
    line = strip_eol(line);
    error_.assign(line.substr(0, 160));
    for (char& c : error_) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
            c = '?';
        }
    }
    return Status::Failed;
}

ReplyReader::Status ReplyReader::on_line(std::string_view line) {
    const std::string_view text = strip_eol(line);
    switch (expect_.shape) {
        case ReplyShape::ImapGreeting:
            return text.starts_with("* OK") || text.starts_with("* PREAUTH") ? Status::Done
                                                                             : fail(line);
        case ReplyShape::ImapTagged: {
            if (!continuing_) {
                tagged_ = text.size() > expect_.tag.size() && text.starts_with(expect_.tag) &&
                          text[expect_.tag.size()] == ' ';
                tagged_ok_ = tagged_ && text.substr(expect_.tag.size() + 1).starts_with("OK");
                if (tagged_ && !tagged_ok_) {
                    return fail(line);
                }
            }
            if (const auto n = literal_at_end(text)) {
                literal_left_ = *n;
                continuing_ = true;
                return Status::NeedMore;
            }
            continuing_ = false;
            return tagged_ ? Status::Done : Status::NeedMore;
        }
        case ReplyShape::Pop3Line:
            return text.starts_with("+OK") ? Status::Done : fail(line);
        case ReplyShape::Pop3Multi:
            if (!body_) {
                if (!text.starts_with("+OK")) {
                    return fail(line);
                }
                body_ = true;
                return Status::NeedMore;
            }
            if (text == ".") {
                return Status::Done;
            }
            payload_ += line.size();
            return Status::NeedMore;
        case ReplyShape::SmtpReply:
            if (text.size() < 3 || text[0] < '2' || text[0] > '5') {
                return fail(line);
            }
            if (text.size() > 3 && text[3] == '-') {
                return Status::NeedMore;
            }
            return text[0] == '2' || text[0] == '3' ? Status::Done : fail(line);
    }
    return fail(line);
}

}  // namespace postern::bench
