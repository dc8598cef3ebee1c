#include "conf/accounts.hpp"

#include <grp.h>
#include <pwd.h>
#include <vector>

namespace postern::conf::detail {

// Large enough buffers for any sane passwd/group entry.
std::optional<std::pair<std::uint32_t, std::uint32_t>> find_user(const std::string& name) {
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
        return std::nullopt;
    }
    return std::pair{static_cast<std::uint32_t>(entry.pw_uid),
                     static_cast<std::uint32_t>(entry.pw_gid)};
}

std::optional<std::uint32_t> find_group(const std::string& name) {
    group entry{};
    group* found = nullptr;
    std::vector<char> buffer(65536);
    if (getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(entry.gr_gid);
}

void read_server_user(TableReader& table, ServerSettings& server) {
    if (auto user = table.string("user", Need::Optional)) {
        if (auto ids = find_user(*user)) {
            server.uid = ids->first;
            server.gid = ids->second;
        } else {
            table.error("user", table.at("user"), "no user named \"" + *user + "\"");
        }
        server.user = std::move(*user);
        server.user_at = table.at("user");
    }
    if (auto name = table.string("group", Need::Optional)) {
        if (server.user.empty()) {
            table.error("group", table.at("group"),
                        "server.group needs server.user (the user postern runs as)");
        } else if (auto gid = find_group(*name)) {
            server.gid = *gid;
        } else {
            table.error("group", table.at("group"), "no group named \"" + *name + "\"");
        }
        server.group = std::move(*name);
    }
}

}  // namespace postern::conf::detail
