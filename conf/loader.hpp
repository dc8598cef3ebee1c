#pragma once
// The loader's one pass over a config document, shared by the files that implement it:
// conf/load.cpp (the document, [server], [tls], [[certificate]]), conf/load_backend.cpp
// ([[backend]]) and conf/load_listener.cpp ([[listener]] and the checks that span listeners).
// Private to those files; everything else uses conf/load.hpp.

#include "conf/config.hpp"
#include "conf/file_snapshot.hpp"
#include "conf/load.hpp"
#include "conf/toml_reader.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::conf::detail {

// Which clients a listen address takes, to find two listeners that would fight over a port:
// a wildcard takes every address of its family, and [::] (dual-stack) IPv4 clients as well.
// Host names are resolved only at startup, so they are not judged here.
enum class Reach : std::uint8_t { Unknown, One4, One6, Any4, Any6 };

class Loader {
public:
    Loader(std::filesystem::path file, const FileSnapshot& files)
        : files_(files), errors_(file.string()), base_(file.parent_path()) {
        config_.file = std::move(file);
    }

    LoadResult run(std::string_view text);

private:
    void read_server(TableReader& root);
    void read_tls(TableReader& root);
    void read_ticket_keys_file(TableReader& tls, TlsSettings& out);
    void read_certificate(TableReader& table);
    void read_backend(TableReader& table);
    void read_exec(TableReader& table, BackendSpec& spec) const;
    void read_listener(TableReader& table);
    void read_routes(TableReader& table, ListenerSpec& spec);
    void read_proxy_in(TableReader& table, ListenerSpec& spec);
    void read_metrics(TableReader& root);
    void check_backend_name(TableReader& table, std::string_view key, const std::string& name,
                            Source at);
    void check_listener_needs(std::size_t listeners, std::size_t certificates);
    void check_overlap(TableReader& table, const Endpoint& listen, const Source& at);
    std::optional<std::filesystem::path> existing_file(TableReader& table, std::string_view key);
    [[nodiscard]] std::filesystem::path resolve(const std::string& text) const {
        return (base_ / std::filesystem::path{text}).lexically_normal();  // absolute stays absolute
    }

    Config config_;
    const FileSnapshot& files_;  // answers every file check
    ErrorSink errors_;
    std::filesystem::path base_;
    Source tls_at_;
    bool tls_default_given_ = false;
    bool certificates_dir_given_ = false;
    Source first_listener_at_;
    // Backend name -> key that declared it, and its position. Holds every declared name, so a
    // backend with a bad address does not also make each listener naming it an error.
    std::map<std::string, std::pair<std::string, Source>, std::less<>> backend_names_;
    // Lower-cased "host:port" -> key of the listen value that claimed it, and its position.
    std::map<std::string, std::pair<std::string, Source>> listen_owners_;
    struct Claim {
        Endpoint listen;
        Reach reach = Reach::Unknown;
        std::string key;
        Source at;
    };
    std::vector<Claim> listens_;  // every listen address so far, in order
};

// server.hostname and listener[].hostname: a DNS name kept as written. Absent leaves `out`
// empty (the proxy's FQDN, or server.hostname for a listener); "" is refused like any empty
// string value.
void read_hostname(TableReader& table, std::string& out);

// ASCII letters lower-cased, everything else kept: DNS names and listen addresses compare
// case-insensitively.
// (Both defined in conf/load.cpp.)
[[nodiscard]] std::string lower_ascii(std::string text);

}  // namespace postern::conf::detail
