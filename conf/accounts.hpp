#pragma once
// User and group names as the system knows them (NSS: files, LDAP, ...), resolved when the
// config is loaded, so a name that resolves then is the one the daemon uses: exec_user and
// exec_group (conf/load_backend.cpp), server.user and server.group (below). Private to conf/.

#include "conf/config.hpp"
#include "conf/toml_reader.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace postern::conf::detail {

// uid and primary gid of `name`; nullopt when there is no such user.
[[nodiscard]] std::optional<std::pair<std::uint32_t, std::uint32_t>> find_user(
    const std::string& name);

// gid of `name`; nullopt when there is no such group.
[[nodiscard]] std::optional<std::uint32_t> find_group(const std::string& name);

// server.user and server.group into `server` (an unknown name is an error at its key); a group
// without a user is refused, since postern would then change only half of who it is.
void read_server_user(TableReader& table, ServerSettings& server);

}  // namespace postern::conf::detail
