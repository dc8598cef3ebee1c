#pragma once
// What the main process asks its privileged helper (proxy/privileged_helper.hpp) to do with
// processes, in the byte form of conf/wire.hpp, and the rules the helper holds each order to.
// The helper is root and the main process is not trusted with root: an order names only what
// the root-owned config already allows. A program is started only when its exec spec (argv,
// ids, exec_env) equals one a config the helper read names; its environment is built by the
// helper from that spec plus the client's UCSPI and SSL variables, whose names are fixed, so no
// LD_PRELOAD or PATH can ride along; signals go only to the helper's own living children.

#include "conf/config.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace postern::proxy {

struct SpawnOrder {
    conf::ExecSpec exec;
    std::vector<std::string> client_environment;  // "NAME=value": exec_connector's client part
    friend bool operator==(const SpawnOrder&, const SpawnOrder&) = default;
};

// Whether `exec` runs its program as a user or group other than server.user's, which only the
// root helper can start once postern has become server.user.
[[nodiscard]] bool runs_as_other(const conf::ExecSpec& exec, const conf::ServerSettings& server);
// `exec` with the ids its program runs with under server.user (unset ones: server.user's), as
// both sides compare it.
[[nodiscard]] conf::ExecSpec with_server_ids(conf::ExecSpec exec,
                                             const conf::ServerSettings& server);

[[nodiscard]] std::string encode_spawn(const SpawnOrder& order);
[[nodiscard]] std::optional<SpawnOrder> decode_spawn(std::string_view bytes);

// Why the helper must not run `order`; empty when it may. `known`: the exec specs of every
// config the helper has read.
[[nodiscard]] std::string refuse_spawn(const SpawnOrder& order,
                                       const std::vector<conf::ExecSpec>& known);

struct SignalOrder {
    pid_t pid = -1;
    int signal = 0;  // SIGTERM or SIGKILL: nothing else is asked for
};

[[nodiscard]] std::string encode_signal(SignalOrder order);
[[nodiscard]] std::optional<SignalOrder> decode_signal(std::string_view bytes);

// A pid in decimal, as Spawned and Started carry it; nullopt unless it is one (> 0).
[[nodiscard]] std::optional<pid_t> decode_pid(std::string_view bytes);

}  // namespace postern::proxy
