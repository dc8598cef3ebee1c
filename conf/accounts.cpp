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

}  // namespace postern::conf::detail
