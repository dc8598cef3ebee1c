// proxy::ChildReaper and proxy::StderrLog with programs started by an ExecConnector: stderr
// lines in the log under the backend's name and their rate limit, the program's end once the
// session lets go (SIGTERM, then SIGKILL), a program that ends on its own, and shutdown.
#include "proxy/child_reaper.hpp"

#include "tests/unit/proxy/exec_test_support.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <sys/wait.h>

namespace postern::proxy {

using namespace test;

TEST_CASE("exec connector: stderr lines reach the log with the backend's name, rate-limited") {
    const LogCapture log;
    const ExecConnector connector{exec_backend(
        {"/bin/sh", "-c", "echo 'INFO: LOGIN, user=test' >&2; printf 'no newline\\033' >&2"})};
    Loop loop;
    BackendOutcome outcome = loop.start(connector);
    const pid_t pid = outcome.child->pid();
    CHECK(loop.read_all(outcome.fd.get()).empty());
    CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
    const std::string prefix = "info prog[" + std::to_string(pid) + "]: ";
    CHECK(log.count(prefix + "INFO: LOGIN, user=test") == 1);
    CHECK(log.count(prefix + "no newline\\x1b") == 1);  // the tail, escaped

    SUBCASE("a chatty program: at most 100 lines a second, then one line with the count") {
        const ExecConnector chatty{exec_backend(
            {"/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i >&2; i=$((i+1)); done"})};
        BackendOutcome flood = loop.start(chatty);
        CHECK(loop.read_all(flood.fd.get()).empty());
        CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
        const std::size_t logged = log.count("]: line ");
        CHECK(logged >= 100);
        CHECK(logged < 300);
        CHECK(log.count("prog: suppressed ") >= 1);
        CHECK(logged + chatty.stderr_log()->suppressed_total() == 300);
    }
}

TEST_CASE("stderr log: N lines a second, the rest counted once the next second starts") {
    const LogCapture log;
    StderrLog stderr_log{"qmail", 3};
    const auto t0 = Clock::now();
    for (int i = 0; i < 10; ++i) {
        stderr_log.line(42, "spam", t0 + std::chrono::milliseconds(i));
    }
    CHECK(log.count("qmail[42]: spam") == 3);
    CHECK(log.count("suppressed") == 0);
    stderr_log.line(42, "later", t0 + 1500ms);
    CHECK(log.count("warning qmail: suppressed 7 stderr line(s)") == 1);
    CHECK(log.count("qmail[42]: later") == 1);
    stderr_log.flush();
    CHECK(log.count("suppressed") == 1);  // nothing more to report
}

TEST_CASE("exec connector: the session's end sends SIGTERM; SIGKILL when that is ignored") {
    const LogCapture log;
    Loop loop{300ms};
    SUBCASE("a program that stops on SIGTERM") {
        const ExecConnector connector{exec_backend({"/bin/sleep", "30"})};
        BackendOutcome outcome = loop.start(connector);
        const pid_t pid = outcome.child->pid();
        outcome.fd.reset();  // the session's end: its socket first, then the handle
        outcome.child.reset();
        const auto released = Clock::now();
        CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
        CHECK(Clock::now() - released < 300ms);
        CHECK(gone(pid));
        CHECK(log.count("SIGKILL") == 0);
    }
    SUBCASE("a program that ignores SIGTERM is killed kill_after later") {
        const ExecConnector connector{
            exec_backend({"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 30"})};
        BackendOutcome outcome = loop.start(connector);
        const pid_t pid = outcome.child->pid();
        // Until the trap is set, SIGTERM would still stop it: wait for sleep to be exec'd.
        CHECK(loop.run_until([&] { return runs(pid, "sleep"); }));
        outcome.fd.reset();
        outcome.child.reset();
        const auto released = Clock::now();
        CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
        CHECK(Clock::now() - released >= 250ms);  // libevent counts from its cached time
        CHECK(gone(pid));
        CHECK(log.count("still running 300 ms after SIGTERM; sending SIGKILL") == 1);
    }
    // No zombie: the reaper waited for each child it had.
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
}

TEST_CASE("exec connector: a program that exits on its own is reaped while the session holds it") {
    const ExecConnector connector{exec_backend({"/bin/true"})};
    Loop loop;
    BackendOutcome outcome = loop.start(connector);
    CHECK(loop.read_all(outcome.fd.get()).empty());  // its exit is the session's EOF
    CHECK(loop.run_until([&] { return loop.reaper.running() == 0; }));
    outcome.child.reset();  // later: nothing left to signal
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
}

TEST_CASE("child reaper: shutdown kills and reaps what is left, bounded") {
    const LogCapture log;
    std::vector<pid_t> pids;
    {
        Loop loop{10s};
        const ExecConnector stubborn{
            exec_backend({"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 30"})};
        const ExecConnector polite{exec_backend({"/bin/sleep", "30"})};
        std::vector<BackendOutcome> held;
        held.push_back(loop.start(stubborn));
        held.push_back(loop.start(polite));
        for (auto& outcome : held) {
            pids.push_back(outcome.child->pid());
            CHECK(loop.run_until([&] { return runs(pids.back(), "sleep"); }));
        }
        held.pop_back();  // released: SIGTERM sent, the kill timer far away
        const auto started = Clock::now();
        loop.reaper.shutdown(Clock::now() + 200ms);
        CHECK(Clock::now() - started < 2s);
        CHECK(loop.reaper.running() == 0);
        held.clear();  // handles of forgotten children: nothing happens
    }
    for (const pid_t pid : pids) {
        CHECK(gone(pid));
    }
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
}

}  // namespace postern::proxy
