#include "conf/accounts.hpp"

#include <cerrno>
#include <cstddef>
#include <grp.h>
#include <pwd.h>
#include <vector>

namespace postern::conf::detail {

namespace {

// getpwnam_r and getgrnam_r fail with ERANGE when the entry does not fit the buffer (a group
// with thousands of members, from LDAP): grow it and ask again rather than call the name
// unknown.
template <typename Entry, typename Pick>
auto lookup(int (*lookup_r)(const char*, Entry*, char*, std::size_t, Entry**),
            const std::string& name, Pick pick) -> std::optional<decltype(pick(Entry{}))> {
    constexpr std::size_t kMaxBuffer = std::size_t{16} << 20;
    std::vector<char> buffer(16384);
    for (;;) {
        Entry entry{};
        Entry* found = nullptr;
        const int error = lookup_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (error == ERANGE && buffer.size() < kMaxBuffer) {
            buffer.resize(buffer.size() * 4);
            continue;
        }
        if (error != 0 || found == nullptr) {
            return std::nullopt;
        }
        return pick(entry);
    }
}

}  // namespace

std::optional<std::pair<std::uint32_t, std::uint32_t>> find_user(const std::string& name) {
    return lookup(&getpwnam_r, name, [](const passwd& entry) {
        return std::pair{static_cast<std::uint32_t>(entry.pw_uid),
                         static_cast<std::uint32_t>(entry.pw_gid)};
    });
}

std::optional<std::uint32_t> find_group(const std::string& name) {
    return lookup(&getgrnam_r, name,
                  [](const group& entry) { return static_cast<std::uint32_t>(entry.gr_gid); });
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

void check_exec_identity(TableReader& table, const ExecSpec& exec, const ServerSettings& server) {
    if (server.user.empty() || !server.uid || !server.gid) {
        return;
    }
    const bool other_user = exec.uid && *exec.uid != *server.uid;
    const bool other_group = exec.gid && *exec.gid != *server.gid;
    if (!other_user && !other_group) {
        return;
    }
    const std::string key = other_user || exec.group.empty() ? "exec_user" : "exec_group";
    table.error(key, table.at(key),
                key + " \"" + (key == "exec_user" ? exec.user : exec.group) +
                    "\" is not server.user's: postern runs as \"" + server.user +
                    "\" once its listeners are bound and cannot start a program as anybody "
                    "else; leave " +
                    key + " out (the program then runs as \"" + server.user +
                    "\"), or run postern without server.user");
}

}  // namespace postern::conf::detail
