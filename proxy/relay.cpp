#include "proxy/relay.hpp"

#include "protocols/goodbye.hpp"

#include <algorithm>

namespace postern::proxy {

using protocols::Peer;
using Clock = Deadlines::Clock;

Io Relay::read(Peer from, bool relaying, bool answering) {
    Stream& src = stream(from);
    Stream& dst = stream(from == Peer::Client ? Peer::Backend : Peer::Client);
    if (!src.is_open() || src.eof || !src.can_read() || (relaying && !dst.is_open())) {
        return Io::Again;
    }
    ByteBuffer& into = relaying ? dst.out : src.in;
    std::size_t limit = 0;
    if (relaying) {  // never past the chunk in hand: a full one is flushed first
        limit = std::min(kHighWater - std::min(kHighWater, dst.out.size()), into.spare());
    } else if (dialogue_has_room() && !(answering && client_.kernel_unsent() >= kHighWater)) {
        const std::size_t cap = from == Peer::Client ? kDialogueIn : backend_in_;
        limit = cap - std::min(cap, src.in.size());
    }
    const std::size_t before = into.size();
    const Io result = src.read_into(into, limit);
    if (result == Io::Eof || result == Io::Error) {
        src.eof = true;
    }
    if (result != Io::Ok) {
        return result;
    }
    const std::size_t n = into.size() - before;
    const auto now = Clock::now();
    if (from == Peer::Client) {
        deadlines_.client_seen(now);
        if (relaying) {
            bytes_in_ += n;
            remember_tail(into, n);
        }
    } else {
        deadlines_.backend_seen(now);
        if (relaying) {
            bytes_out_ += n;
            if (before == 0) {
                deadlines_.client_flushed(now);  // the client's turn to read starts now
            }
        }
    }
    return Io::Ok;
}

Io Relay::flush(Peer to) {
    Stream& s = stream(to);
    if (!s.is_open() || s.out.empty() || !s.can_write()) {
        return Io::Again;
    }
    const Io result = s.flush();
    if (result == Io::Ok && to == Peer::Client) {
        deadlines_.client_flushed(Clock::now());
    }
    return result;
}

void Relay::send(Peer to, std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    Stream& dst = stream(to);
    if (to == Peer::Client) {
        if (dst.out.empty()) {
            deadlines_.client_flushed(Clock::now());
        }
        bytes_out_ += bytes.size();
    }
    dst.out.append(bytes);
}

void Relay::start() {
    if (!client_.in.empty()) {
        const std::size_t n = client_.in.size();
        bytes_in_ += n;
        client_.in.move_to(backend_.out);
        remember_tail(backend_.out, n);
    }
    if (!backend_.in.empty()) {
        bytes_out_ += backend_.in.size();
        if (client_.out.empty()) {
            deadlines_.client_flushed(Clock::now());
        }
        backend_.in.move_to(client_.out);
    }
}

bool Relay::client_said_goodbye(protocols::Protocol protocol) const noexcept {
    return protocols::ends_with_goodbye(protocol, tail_);
}

void Relay::remember_tail(const ByteBuffer& sent, std::size_t length) {
    const std::size_t keep = std::min(length, protocols::kGoodbyeTail);
    const std::string_view last = sent.view().substr(sent.size() - keep);
    if (keep == protocols::kGoodbyeTail) {
        tail_.clear();
    } else if (tail_.size() + keep > protocols::kGoodbyeTail) {
        tail_.erase(0, tail_.size() + keep - protocols::kGoodbyeTail);
    }
    tail_.append(last);
}

}  // namespace postern::proxy
