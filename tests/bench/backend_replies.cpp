// What postern-bench-backend answers to each command (backend_main.cpp has the protocol summary):
// any login is accepted, NOOP answered, XBULK n starts a bulk reply of n payload bytes.

#include "tests/bench/backend_session.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace postern::bench::backend {
namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

// The next space-separated word of `rest`, which moves past it.
std::string_view next_word(std::string_view& rest) {
    const std::size_t start = std::min(rest.find_first_not_of(' '), rest.size());
    rest.remove_prefix(start);
    const std::size_t end = std::min(rest.find(' '), rest.size());
    const std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end);
    return word;
}

}  // namespace

void Session::dispatch(std::string_view command) {
    switch (protocol_) {
        case Protocol::Imap:
            imap(command);
            break;
        case Protocol::Pop3:
            pop3(command);
            break;
        case Protocol::Smtp:
            smtp(command);
            break;
    }
}

void Session::imap(std::string_view command) {
    std::string_view rest = command;
    const std::string tag{next_word(rest)};
    const std::string verb = upper(next_word(rest));
    if (tag.empty()) {
        say("* BAD empty command\r\n");
    } else if (verb == "LOGIN" || verb == "AUTHENTICATE") {
        say(tag + " OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] LOGIN completed\r\n");
    } else if (verb == "NOOP") {
        say(tag + " OK NOOP completed\r\n");
    } else if (verb == "CAPABILITY") {
        say("* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE AUTH=PLAIN\r\n" + tag +
            " OK CAPABILITY completed\r\n");
    } else if (verb == "XBULK") {
        const std::uint64_t n = to_number(next_word(rest));
        say("* 1 FETCH (BODY[] {" + std::to_string(n) + "}\r\n");
        start_bulk(n, ")\r\n" + tag + " OK XBULK completed\r\n");
    } else if (verb == "LOGOUT") {
        say("* BYE logging out\r\n" + tag + " OK LOGOUT completed\r\n");
        finish_after_flush();
    } else {
        say(tag + " BAD unknown command\r\n");
    }
}

void Session::pop3(std::string_view command) {
    std::string_view rest = command;
    const std::string verb = upper(next_word(rest));
    if (verb == "USER" || verb == "NOOP" || verb == "RSET") {
        say("+OK\r\n");
    } else if (verb == "PASS" || verb == "APOP") {
        say("+OK logged in\r\n");
    } else if (verb == "CAPA") {
        say("+OK capability list follows\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n");
    } else if (verb == "STAT") {
        say("+OK 0 0\r\n");
    } else if (verb == "XBULK") {
        const std::uint64_t n = to_number(next_word(rest));
        const std::uint64_t lines = (n + kLineBytes - 1) / kLineBytes;
        say("+OK " + std::to_string(lines * kLineBytes) + " octets\r\n");
        start_bulk(lines * kLineBytes, ".\r\n");
    } else if (verb == "QUIT") {
        say("+OK bye\r\n");
        finish_after_flush();
    } else {
        say("-ERR unknown command\r\n");
    }
}

void Session::smtp(std::string_view command) {
    if (smtp_data_) {
        if (command == ".") {
            smtp_data_ = false;
            say("250 2.0.0 Ok: queued\r\n");
        }
        return;
    }
    std::string_view rest = command;
    const std::string verb = upper(next_word(rest));
    if (verb == "EHLO") {
        say("250-bench.backend\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n"
            "250 SIZE 10240000\r\n");
    } else if (verb == "HELO") {
        say("250 bench.backend\r\n");
    } else if (verb == "AUTH") {
        say("235 2.7.0 Authentication successful\r\n");
    } else if (verb == "MAIL") {
        say("250 2.1.0 Ok\r\n");
    } else if (verb == "RCPT") {
        say("250 2.1.5 Ok\r\n");
    } else if (verb == "NOOP" || verb == "RSET") {
        say("250 2.0.0 Ok\r\n");
    } else if (verb == "DATA") {
        smtp_data_ = true;
        say("354 End data with <CR><LF>.<CR><LF>\r\n");
    } else if (verb == "QUIT") {
        say("221 2.0.0 Bye\r\n");
        finish_after_flush();
    } else {
        say("502 5.5.2 Error: command not recognized\r\n");
    }
}

}  // namespace postern::bench::backend
