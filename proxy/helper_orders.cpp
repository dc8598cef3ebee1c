#include "proxy/helper_orders.hpp"

#include "conf/wire.hpp"
#include "proxy/exec_connector.hpp"

#include <algorithm>
#include <charconv>
#include <csignal>

namespace postern::proxy {
namespace {

constexpr std::string_view kSpawnMagic = "postern-spawn-1";
constexpr std::size_t kMaxStrings = 4096;
constexpr std::size_t kUnset = 0xFFFFFFFFU;  // an id the order leaves to the helper

void strings(conf::Writer& out, const std::vector<std::string>& list) {
    out.u32(list.size());
    for (const std::string& item : list) {
        out.str(item);
    }
}

bool strings(conf::Reader& in, std::vector<std::string>& list) {
    std::size_t count = 0;
    if (!in.count(count, kMaxStrings, conf::kWireWord)) {
        return false;
    }
    list.resize(count);
    return std::all_of(list.begin(), list.end(), [&in](std::string& item) { return in.str(item); });
}

bool id(conf::Reader& in, std::optional<std::uint32_t>& value) {
    std::size_t raw = 0;
    if (!in.u32(raw)) {
        return false;
    }
    value = raw == kUnset ? std::nullopt : std::optional<std::uint32_t>(raw);
    return true;
}

template <typename Number>
bool number(std::string_view text, Number& out) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

bool runs_as_other(const conf::ExecSpec& exec, const conf::ServerSettings& server) {
    return (exec.uid && exec.uid != server.uid) || (exec.gid && exec.gid != server.gid);
}

conf::ExecSpec with_server_ids(conf::ExecSpec exec, const conf::ServerSettings& server) {
    if (!exec.uid) {
        exec.uid = server.uid;
    }
    if (!exec.gid) {
        exec.gid = server.gid;
    }
    return exec;
}

std::string encode_spawn(const SpawnOrder& order) {
    conf::Writer out;
    out.str(kSpawnMagic);
    strings(out, order.exec.argv);
    out.str(order.exec.user);
    out.str(order.exec.group);
    out.u32(order.exec.uid.value_or(kUnset));
    out.u32(order.exec.gid.value_or(kUnset));
    out.u32(order.exec.env.size());
    for (const auto& [name, value] : order.exec.env) {
        out.str(name);
        out.str(value);
    }
    strings(out, order.client_environment);
    return out.take();
}

std::optional<SpawnOrder> decode_spawn(std::string_view bytes) {
    conf::Reader in{bytes};
    SpawnOrder order;
    std::string magic;
    std::size_t env = 0;
    if (!in.str(magic) || magic != kSpawnMagic || !strings(in, order.exec.argv) ||
        !in.str(order.exec.user) || !in.str(order.exec.group) || !id(in, order.exec.uid) ||
        !id(in, order.exec.gid) || !in.count(env, kMaxStrings, 2 * conf::kWireWord)) {
        return std::nullopt;
    }
    order.exec.env.resize(env);
    for (auto& [name, value] : order.exec.env) {
        if (!in.str(name) || !in.str(value)) {
            return std::nullopt;
        }
    }
    if (!strings(in, order.client_environment) || !in.done()) {
        return std::nullopt;
    }
    return order;
}

std::string refuse_spawn(const SpawnOrder& order, const std::vector<conf::ExecSpec>& known) {
    if (order.exec.argv.empty() ||
        std::find(known.begin(), known.end(), order.exec) == known.end()) {
        return "no exec backend of the config runs this program as this user";
    }
    for (const std::string& variable : order.client_environment) {
        if (!is_client_variable(variable)) {
            return "not a client variable: " + variable.substr(0, variable.find('='));
        }
    }
    return {};
}

std::string encode_signal(SignalOrder order) {
    return std::to_string(order.pid) + " " + std::to_string(order.signal);
}

std::optional<SignalOrder> decode_signal(std::string_view bytes) {
    const std::size_t space = bytes.find(' ');
    SignalOrder order;
    if (space == std::string_view::npos || !number(bytes.substr(0, space), order.pid) ||
        !number(bytes.substr(space + 1), order.signal) || order.pid <= 0 ||
        (order.signal != SIGTERM && order.signal != SIGKILL)) {
        return std::nullopt;
    }
    return order;
}

std::optional<pid_t> decode_pid(std::string_view bytes) {
    pid_t pid = -1;
    if (!number(bytes, pid) || pid <= 0) {
        return std::nullopt;
    }
    return pid;
}

}  // namespace postern::proxy
