// proxy/helper_orders: what the root helper accepts from the unprivileged process. A spawn
// order survives its byte form whole, and the helper runs only an exec spec a config named,
// with nothing but the client's variables added; signals are SIGTERM or SIGKILL for a pid.

#include "proxy/helper_orders.hpp"

#include "conf/wire.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <string>

namespace postern::proxy {
namespace {

conf::ExecSpec courier() {
    conf::ExecSpec exec;
    exec.argv = {"/usr/sbin/imaplogin", "/usr/bin/imapd", "Maildir"};
    exec.user = "root";
    exec.uid = 0;
    exec.gid = 0;
    exec.env = {{"IMAP_CAPABILITY", "IMAP4rev1"}};
    return exec;
}

SpawnOrder order() {
    return {.exec = courier(),
            .client_environment = {"PROTO=TCP", "TCPREMOTEIP=192.0.2.7", "SSL_TLS_SNI=mx.example"}};
}

}  // namespace

TEST_CASE("helper orders: a spawn order survives its byte form; a cut or padded one does not") {
    const std::string wire = encode_spawn(order());
    const std::optional<SpawnOrder> back = decode_spawn(wire);
    REQUIRE(back.has_value());
    CHECK(*back == order());
    SpawnOrder unset = order();
    unset.exec.gid.reset();
    CHECK(decode_spawn(encode_spawn(unset)) == unset);
    for (std::size_t cut = 0; cut < wire.size(); cut += 7) {
        CHECK_FALSE(decode_spawn(std::string_view{wire}.substr(0, cut)).has_value());
    }
    CHECK_FALSE(decode_spawn(wire + "x").has_value());
}

TEST_CASE("helper orders: a count the bytes left cannot hold is refused") {
    // What a hostile main process could send: the magic, then 4096 (or 4 billion) argv entries
    // announced with one present. conf/wire.hpp's Reader::count refuses it before the list is
    // sized (tests/fuzz/helper_messages_fuzz.cpp bounds the allocation itself).
    for (const std::size_t argv : {std::size_t{4096}, std::size_t{0xFFFFFFFFU}}) {
        conf::Writer out;
        out.str("postern-spawn-1");
        out.u32(argv);
        out.str("/bin/cat");
        CHECK_FALSE(decode_spawn(out.take()).has_value());
    }
    std::string wire = encode_spawn(order());
    const std::string env_count = "\x01\x00\x00\x00\x0f\x00\x00\x00IMAP_CAPABILITY";
    const std::size_t at = wire.find(env_count);
    REQUIRE(at != std::string::npos);
    wire.replace(at, 4, std::string("\x00\x10\x00\x00", 4));  // 4096 pairs
    CHECK_FALSE(decode_spawn(wire).has_value());
}

TEST_CASE("helper orders: only a spec a config named, with only the client's variables") {
    const std::vector<conf::ExecSpec> known{courier()};
    CHECK(refuse_spawn(order(), known).empty());
    SUBCASE("another program, user or environment") {
        SpawnOrder other = order();
        other.exec.argv = {"/bin/sh", "-c", "id"};
        CHECK_FALSE(refuse_spawn(other, known).empty());
        other = order();
        other.exec.uid = 1000;
        CHECK_FALSE(refuse_spawn(other, known).empty());
        other = order();
        other.exec.env.emplace_back("LD_PRELOAD", "/tmp/x.so");
        CHECK_FALSE(refuse_spawn(other, known).empty());
        CHECK_FALSE(refuse_spawn(order(), {}).empty());
    }
    SUBCASE("a variable that is not the client's") {
        for (const char* variable :
             {"LD_PRELOAD=/tmp/x.so", "PATH=/tmp", "TCPREMOTEIP", "=x", "TCPREMOTEIPX=1"}) {
            SpawnOrder other = order();
            other.client_environment.emplace_back(variable);
            CHECK_MESSAGE(!refuse_spawn(other, known).empty(), variable);
        }
        SpawnOrder nul = order();
        nul.client_environment.emplace_back(std::string("TCPLOCALHOST=a\0LD_PRELOAD=x", 27));
        CHECK_FALSE(refuse_spawn(nul, known).empty());
    }
}

TEST_CASE("helper orders: the ids a program runs with under server.user") {
    conf::ServerSettings server;
    server.uid = 65534;
    server.gid = 65534;
    conf::ExecSpec exec;
    exec.argv = {"/bin/cat"};
    CHECK_FALSE(runs_as_other(exec, server));
    CHECK(with_server_ids(exec, server).uid == 65534U);
    exec.gid = 0;  // exec_group = "root" alone
    CHECK(runs_as_other(exec, server));
    const conf::ExecSpec run = with_server_ids(exec, server);
    CHECK(run.uid == 65534U);
    CHECK(run.gid == 0U);
    exec.gid = 65534;
    exec.uid = 65534;
    CHECK_FALSE(runs_as_other(exec, server));
}

TEST_CASE("helper orders: signals are SIGTERM or SIGKILL for a positive pid") {
    const std::optional<SignalOrder> term =
        decode_signal(encode_signal({.pid = 42, .signal = SIGTERM}));
    REQUIRE(term.has_value());
    CHECK(term->pid == 42);
    CHECK(term->signal == SIGTERM);
    CHECK(decode_signal(encode_signal({.pid = 7, .signal = SIGKILL})).has_value());
    CHECK_FALSE(decode_signal(encode_signal({.pid = 7, .signal = SIGHUP})).has_value());
    CHECK_FALSE(decode_signal(encode_signal({.pid = 0, .signal = SIGTERM})).has_value());
    CHECK_FALSE(decode_signal(encode_signal({.pid = -1, .signal = SIGTERM})).has_value());
    CHECK_FALSE(decode_signal("42").has_value());
    CHECK_FALSE(decode_signal("42 15 x").has_value());
    CHECK(decode_pid("1234") == 1234);
    CHECK_FALSE(decode_pid("0").has_value());
    CHECK_FALSE(decode_pid("12a").has_value());
}

}  // namespace postern::proxy
