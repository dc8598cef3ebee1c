// proxy/open_files.hpp: the descriptors a max_sessions needs, and what run() does when the
// open-files limit cannot hold it (refuse a written value, lower the default).

#include "proxy/open_files.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <sys/resource.h>

namespace postern::proxy {
namespace {

conf::Config config_with(std::size_t listeners, bool exec = false) {
    conf::Config config;
    config.listeners.resize(listeners);
    conf::BackendSpec backend;
    if (exec) {
        backend.exec.argv = {"/bin/cat"};
    }
    config.backends.push_back(backend);
    return config;
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

}  // namespace

TEST_CASE("open files: two per session, four with an exec backend, plus listeners and spare") {
    const OpenFiles tcp = open_files_for(config_with(3), 2);
    CHECK(tcp.per_session == 2);
    CHECK(tcp.listening == 6);
    CHECK(tcp.spare == kSpareFiles + 2 * kSpareFilesPerWorker);
    CHECK(tcp.needed(100) == 200 + 6 + tcp.spare);
    CHECK(tcp.sessions_within(tcp.needed(100)) == 100);
    CHECK(tcp.sessions_within(tcp.needed(100) - 1) == 99);
    CHECK(tcp.sessions_within(6 + tcp.spare + 1) == 0);
    CHECK(tcp.sessions_within(0) == 0);
    CHECK(open_files_for(config_with(1, true), 1).per_session == 4);
}

TEST_CASE("open files: max_sessions that fits is used as it is") {
    conf::Config config = config_with(2);
    config.server.max_sessions = 1000;
    const SessionsFit fit = fit_max_sessions(config, 1, 1'000'000);
    CHECK(fit.sessions == 1000);
    CHECK(fit.message.empty());
}

TEST_CASE("open files: a written max_sessions over the limit is refused, naming the fix") {
    conf::Config config = config_with(2);
    config.server.max_sessions = 10'000;
    config.server.max_sessions_set = true;
    const OpenFiles files = open_files_for(config, 1);
    const SessionsFit fit = fit_max_sessions(config, 1, 1024);
    CHECK(fit.sessions == 0);
    INFO(fit.message);
    const std::string needed = std::to_string(files.needed(10'000));
    CHECK(contains(fit.message, "max_sessions = 10000, needs " + needed + " open files"));
    CHECK(contains(fit.message, "the open-files limit is 1024"));
    CHECK(contains(fit.message, "LimitNOFILE=" + needed));
    CHECK(contains(fit.message, "ulimit -n " + needed));
    CHECK(contains(fit.message,
                   "lower max_sessions to at most " + std::to_string(files.sessions_within(1024))));
}

TEST_CASE("open files: the default is lowered to what the limit holds, with a warning") {
    const conf::Config config = config_with(2);  // max_sessions not written: 10000
    const OpenFiles files = open_files_for(config, 1);
    const SessionsFit fit = fit_max_sessions(config, 1, 20'000);
    CHECK(fit.sessions == files.sessions_within(20'000));
    CHECK(fit.sessions < 10'000);
    CHECK(files.needed(fit.sessions) <= 20'000);
    INFO(fit.message);
    CHECK(contains(fit.message, "using max_sessions = " + std::to_string(fit.sessions)));

    SUBCASE("unless not even one session fits") {
        const SessionsFit none = fit_max_sessions(config, 1, 10);
        CHECK(none.sessions == 0);
        CHECK(contains(none.message, "not even one session fits"));
    }
}

TEST_CASE("open files: the soft limit is raised to the hard one") {
    rlimit before{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &before) == 0);
    rlimit lowered = before;
    lowered.rlim_cur = before.rlim_max > 256 ? 256 : before.rlim_max;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    CHECK(raise_open_files_limit() == before.rlim_max);
    rlimit after{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &after) == 0);
    CHECK(after.rlim_cur == before.rlim_max);
    CHECK(open_files_hard_limit() == before.rlim_max);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &before) == 0);
}

}  // namespace postern::proxy
