#pragma once
// postern-bench-backend's session: one client connection to the fixture. backend_main.cpp holds
// the server, the session's I/O and bulk streaming; backend_replies.cpp what it answers to each
// IMAP, POP3 and SMTP command.

#include "tests/bench/handles.hpp"

#include <event2/bufferevent.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace postern::bench::backend {

using BevPtr = std::unique_ptr<bufferevent, CFree<&bufferevent_free>>;

enum class Protocol : std::uint8_t { Imap, Pop3, Smtp };

inline constexpr std::size_t kLineBytes = 80;  // 78 x's and CRLF

inline std::uint64_t to_number(std::string_view s) {
    std::uint64_t n = 0;
    (void)std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
}

class Server;

class Session {
public:
    Session(Server& server, Protocol protocol, BevPtr bev);
    void start();
    void on_read();
    void on_write();
    void on_event(short what);

private:
    void dispatch(std::string_view command);
    void imap(std::string_view command);
    void pop3(std::string_view command);
    void smtp(std::string_view command);
    void say(std::string_view text);
    void start_bulk(std::uint64_t bytes, std::string trailer);
    void refill();
    void finish_after_flush();
    [[nodiscard]] bool streaming() const noexcept { return bulk_left_ > 0 || !trailer_.empty(); }

    Server& server_;
    Protocol protocol_;
    BevPtr bev_;
    std::string command_;
    std::size_t literal_need_ = 0;  // IMAP literal bytes still to read into command_
    bool smtp_data_ = false;        // inside SMTP DATA, until "."
    bool closing_ = false;
    std::uint64_t bulk_left_ = 0;
    std::string trailer_;
};

}  // namespace postern::bench::backend
