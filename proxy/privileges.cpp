#include "proxy/privileges.hpp"

#include "proxy/log.hpp"
#include "proxy/replacement.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <fstream>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace postern::proxy {
namespace {

std::string failed(const char* step) {
    return std::string{step} + ": " + errno_text(errno);
}

// setuid() clears the permitted and effective sets, and with them the ambient one; the
// inheritable set survives it (a supervisor may have set one), so it is emptied explicitly.
bool clear_capabilities() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
    return ::syscall(SYS_capset, &header, data.data()) == 0;
}

}  // namespace

bool running_as_root() noexcept {
    return ::geteuid() == 0;
}

std::string capabilities_held() {
    std::ifstream status{"/proc/self/status"};
    std::string out;
    for (std::string line; std::getline(status, line);) {
        for (const char* name : {"CapInh:", "CapPrm:", "CapEff:", "CapAmb:"}) {
            if (line.starts_with(name) &&
                line.find_first_not_of("0\t ", std::string_view{name}.size()) !=
                    std::string::npos) {
                out += (out.empty() ? "" : ", ") + line;
            }
        }
    }
    return out;
}

bool drop_privileges(const conf::ServerSettings& server, std::string& error) {
    if (!server.uid || !server.gid) {
        error = "server.user is not resolved";
        return false;
    }
    const uid_t uid = *server.uid;
    const gid_t gid = *server.gid;
    if (uid == 0) {
        error = "server.user \"" + server.user + "\" is root; name an unprivileged user";
        return false;
    }
    // Supplementary groups first (that needs root), then the group, then the user.
    if (::initgroups(server.user.c_str(), gid) != 0) {
        error = failed("initgroups");
        return false;
    }
    if (::setresgid(gid, gid, gid) != 0) {
        error = failed("setresgid");
        return false;
    }
    if (::setresuid(uid, uid, uid) != 0) {
        error = failed("setresuid");
        return false;
    }
    if (!clear_capabilities()) {
        error = failed("capset");
        return false;
    }
    // Not dumpable: no ptrace and no core file by the same user; /proc/PID/status stays
    // readable by root.
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) {
        error = failed("prctl(PR_SET_DUMPABLE)");
        return false;
    }
    uid_t ruid = 0;
    uid_t euid = 0;
    uid_t suid = 0;
    gid_t rgid = 0;
    gid_t egid = 0;
    gid_t sgid = 0;
    if (::getresuid(&ruid, &euid, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0 ||
        ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid) {
        error = "the user and group ids did not all change";
        return false;
    }
    // Root again must be impossible.
    if (::setuid(0) == 0 || ::seteuid(0) == 0) {
        error = "root could be regained after setuid";
        return false;
    }
    if (const std::string held = capabilities_held(); !held.empty()) {
        error = "capabilities are still held: " + held;
        return false;
    }
    return true;
}

bool start_privilege_separation(const conf::Config& config,
                                const std::vector<std::string>& arguments,
                                std::unique_ptr<PrivilegedHelper>& helper) {
    if (!running_as_root()) {
        if (!config.server.user.empty() && ::geteuid() != config.server.uid) {
            spdlog::warn("{}: server.user \"{}\" is ignored: postern was not started as root",
                         config.file.string(), config.server.user);
        }
        return true;
    }
    if (config.server.user.empty()) {
        spdlog::warn(
            "{}: running as root: every process that handles client bytes and TLS keeps root's "
            "privileges; set server.user (e.g. \"postern\") so that only a small helper that "
            "reads the certificate files stays root",
            config.file.string());
        return true;
    }
    std::string error;
    helper = PrivilegedHelper::start(
        {.config_file = config.file, .executable = own_executable(), .arguments = arguments},
        error);
    if (!helper) {
        spdlog::error("cannot start the privileged helper: {}", error);
        return false;
    }
    return true;
}

bool finish_privilege_separation(const conf::Config& config, const PrivilegedHelper* helper) {
    if (helper == nullptr) {
        return true;
    }
    std::string error;
    if (!drop_privileges(config.server, error)) {
        spdlog::error("cannot become server.user \"{}\": {}", config.server.user, error);
        return false;
    }
    spdlog::info(
        "running as user {} (uid {}, gid {}); certificate files are read by a privileged "
        "helper (pid {})",
        config.server.user, *config.server.uid, *config.server.gid, helper->pid());
    return true;
}

}  // namespace postern::proxy
