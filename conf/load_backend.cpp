// [[backend]] tables: where a session's plaintext goes (an address list tried in order, or a
// program run per session, UCSPI style) and how the backend learns who the client is (a PROXY
// header, the protocol's XCLIENT/ID, or the exec environment). Part of detail::Loader
// (conf/loader.hpp).

#include "conf/accounts.hpp"
#include "conf/files.hpp"
#include "conf/loader.hpp"
#include "conf/parse_value.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

namespace postern::conf::detail {

namespace {

constexpr std::array<Choice<ProxyHeader>, 2> kProxyHeaders{{
    {"v1", ProxyHeader::V1},
    {"v2", ProxyHeader::V2},
}};

// What postern itself tells an exec backend about the session (proxy/exec_connector.hpp);
// exec_env may add to these, never replace them, or a config could lie about the client.
constexpr std::array<std::string_view, 9> kSessionVariables{
    "PROTO",        "TCPREMOTEIP",  "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT",
    "TCPLOCALHOST", "SSL_PROTOCOL", "SSL_CIPHER",    "SSL_TLS_SNI"};

bool is_variable_name(std::string_view name) noexcept {
    if (name.empty() || (name.front() >= '0' && name.front() <= '9')) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

}  // namespace

void Loader::read_backend(TableReader& table) {
    table.reject_unknown_keys({"name", "address", "exec", "exec_user", "exec_group", "exec_env",
                               "send_proxy", "xclient", "connect_timeout"});
    BackendSpec spec;
    spec.key_name = table.path();
    spec.at = table.at();
    if (auto name = table.string("name", Need::Required)) {
        const auto [it, fresh] =
            backend_names_.try_emplace(*name, table.key_path("name"), table.at("name"));
        if (!fresh) {
            table.error("name", table.at("name"),
                        "duplicate backend name \"" + *name + "\" (first defined by " +
                            it->second.first + " on line " +
                            std::to_string(it->second.second.line) + ")");
        }
        spec.name = std::move(*name);
    }
    if (table.has("exec")) {
        if (table.has("address")) {
            table.error("exec", table.at("exec"),
                        "exec and address exclude each other: a backend is either a program "
                        "run per session or addresses to connect to");
        }
        read_exec(table, spec);
    } else if (!table.has("address")) {
        table.error("address", table.at(),
                    R"(missing required key "address" (or "exec": a program run per session))");
    } else if (auto addresses = table.strings("address", Need::Required)) {
        for (const TableReader::Item& item : *addresses) {
            Parsed<Endpoint> parsed = parse_endpoint(item.text);
            if (!parsed.value) {
                table.error(item.key, item.at, std::move(parsed.error));
                continue;
            }
            const bool twice = std::any_of(
                spec.addresses.begin(), spec.addresses.end(), [&parsed](const Endpoint& e) {
                    return lower_ascii(e.to_string()) == lower_ascii(parsed.value->to_string());
                });
            if (twice) {
                table.error(item.key, item.at,
                            parsed.value->to_string() + " is already in the list");
                continue;
            }
            spec.addresses.push_back(std::move(*parsed.value));
        }
    }
    const bool exec = table.has("exec");
    for (const std::string_view key : {"exec_user", "exec_group", "exec_env"}) {
        if (!exec && table.has(key)) {
            table.error(key, table.at(key),
                        std::string{key} + " only applies to an exec backend (exec = [...])");
        }
    }
    for (const std::string_view key : {"send_proxy", "xclient", "connect_timeout"}) {
        if (exec && table.has(key)) {
            table.error(key, table.at(key),
                        std::string{key} +
                            " does not apply to an exec backend: the program "
                            "learns the client from its environment "
                            "(TCPREMOTEIP, ...)");
        }
    }
    if (auto header = table.choice<ProxyHeader>("send_proxy", kProxyHeaders, Need::Optional,
                                                "PROXY protocol version")) {
        spec.send_proxy = *header;
    }
    if (auto xclient = table.boolean("xclient")) {
        spec.xclient = *xclient;
        if (spec.xclient && spec.send_proxy != ProxyHeader::None) {
            table.error("xclient", table.at("xclient"),
                        "send_proxy and xclient both pass the client's address; choose one");
        }
    }
    if (auto timeout = table.duration("connect_timeout")) {
        spec.connect_timeout = *timeout;
    }
    config_.backends.push_back(std::move(spec));
}

void Loader::read_exec(TableReader& table, BackendSpec& spec) const {
    if (auto argv = table.strings("exec", Need::Required)) {
        const std::string& program = argv->front().text;
        if (program.front() != '/') {
            table.error(argv->front().key, argv->front().at,
                        "\"" + program +
                            "\" is not an absolute path (no shell and no PATH search: write the "
                            "program's full path)");
        } else if (::access(program.c_str(), X_OK) != 0) {
            table.error(argv->front().key, argv->front().at,
                        "cannot run \"" + program + "\": " + errno_text(errno));
        }
        for (TableReader::Item& item : *argv) {
            spec.exec.argv.push_back(std::move(item.text));
        }
    }
    if (auto user = table.string("exec_user", Need::Optional)) {
        if (auto ids = find_user(*user)) {
            spec.exec.uid = ids->first;
            spec.exec.gid = ids->second;
        } else {
            table.error("exec_user", table.at("exec_user"), "no user named \"" + *user + "\"");
        }
        spec.exec.user = std::move(*user);
    }
    if (auto name = table.string("exec_group", Need::Optional)) {
        if (auto gid = find_group(*name)) {
            spec.exec.gid = *gid;
        } else {
            table.error("exec_group", table.at("exec_group"), "no group named \"" + *name + "\"");
        }
        spec.exec.group = std::move(*name);
    }
    if (auto env = table.string_table("exec_env")) {
        for (TableReader::Item& item : *env) {
            if (!is_variable_name(item.name)) {
                table.error(item.key, item.at,
                            "\"" + item.name + "\" is not an environment variable name");
            } else if (std::find(kSessionVariables.begin(), kSessionVariables.end(), item.name) !=
                       kSessionVariables.end()) {
                table.error(item.key, item.at,
                            "postern sets " + item.name +
                                " itself for each session; it cannot be configured");
            } else if (item.text.find('\0') != std::string::npos) {
                table.error(item.key, item.at, "a value cannot contain a NUL byte");
            } else {
                spec.exec.env.emplace_back(std::move(item.name), std::move(item.text));
            }
        }
    }
}

}  // namespace postern::conf::detail
