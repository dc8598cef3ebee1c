// libFuzzer target for the config loader (conf/load.hpp): TOML text in, a Config or errors out,
// never a crash. The text is loaded as <dir>/postern.toml, where <dir> is a scratch folder made
// once per process holding the files a config may name (cert.pem, key.pem, bundle.p12, password,
// live/mail.example/{fullchain,privkey}.pem), so that valid configs load all the way. Invariants,
// besides "no crash, leak or UB": a Config exactly when there are no errors; every error names
// the file, says something, and errors come sorted by position; a loaded Config holds what the
// loader promises (backend names unique and every listener and route naming one, an exec
// backend exactly when it has no address and its program is absolute, listen addresses
// distinct, routes sorted and unique, TLS required on implicit listeners, accept_proxy exactly
// with trusted_proxies, values in their ranges, a default certificate when there are listeners).
// CONFIG_FUZZ_VERBOSE=1 prints each input's outcome (./config_fuzz FILE...).

#include "conf/errors.hpp"
#include "conf/load.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <system_error>

namespace {

namespace fs = std::filesystem;
using postern::conf::Config;
using postern::conf::ConfigError;

void require(bool ok, int line = __builtin_LINE()) {
    if (!ok) {
        static_cast<void>(std::fprintf(stderr, "config_fuzz.cpp:%d: invariant broken\n", line));
        std::abort();
    }
}

// The scratch folder, removed when the fuzzer exits normally.
class Scratch {
public:
    Scratch() {
        std::string pattern = (fs::temp_directory_path() / "postern-config-fuzz.XXXXXX").string();
        require(::mkdtemp(pattern.data()) != nullptr);
        dir_ = pattern;
        fs::create_directories(dir_ / "live" / "mail.example");
        for (const char* name :
             {"cert.pem", "key.pem", "bundle.p12", "password", "live/mail.example/fullchain.pem",
              "live/mail.example/privkey.pem"}) {
            std::ofstream{dir_ / name} << "x\n";
        }
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    Scratch(Scratch&&) = delete;
    Scratch& operator=(Scratch&&) = delete;
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    [[nodiscard]] fs::path file() const { return dir_ / "postern.toml"; }

private:
    fs::path dir_;
};

void check_errors(const std::vector<ConfigError>& errors, const std::string& file) {
    for (std::size_t i = 0; i < errors.size(); ++i) {
        require(errors[i].file == file && !errors[i].message.empty());
        require(!postern::conf::format_error(errors[i]).empty());
        if (i > 0) {
            const ConfigError& before = errors[i - 1];
            require(before.line < errors[i].line ||
                    (before.line == errors[i].line && before.column <= errors[i].column));
        }
    }
}

void check_config(const Config& config) {
    require(config.server.workers <= postern::conf::kMaxWorkers);
    require(config.listeners.empty() || !config.tls.default_certificate.empty());
    std::set<std::string> names;
    for (const auto& backend : config.backends) {
        require(!backend.name.empty() && names.insert(backend.name).second);
        require(backend.is_exec() == backend.addresses.empty());
        require(!backend.is_exec() || backend.exec.argv.front().starts_with('/'));
        for (const auto& address : backend.addresses) {
            require(!address.host.empty() && address.port != 0);
        }
    }
    std::set<std::string> listens;
    for (const auto& listener : config.listeners) {
        require(names.count(listener.backend) == 1);
        require(!listener.listen.host.empty() && listener.listen.port != 0);
        std::string claim = listener.listen.to_string();
        std::transform(claim.begin(), claim.end(), claim.begin(),
                       [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
        require(listens.insert(claim).second);
        require(listener.tls != postern::conf::TlsMode::Implicit || listener.require_tls);
        require(listener.max_errors >= 1 && listener.max_errors <= postern::conf::kMaxMaxErrors);
        require(listener.accept_proxy == !listener.trusted_proxies.empty());
        for (std::size_t i = 0; i < listener.routes.size(); ++i) {
            require(names.count(listener.routes[i].backend) == 1);
            require(i == 0 || listener.routes[i - 1].server_name < listener.routes[i].server_name);
        }
    }
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const Scratch scratch;
    const fs::path file = scratch.file();
    const std::string_view text{reinterpret_cast<const char*>(data), size};
    const postern::conf::LoadResult result = postern::conf::load_config_text(text, file);
    // NOLINTNEXTLINE(concurrency-mt-unsafe): libFuzzer calls from one thread
    if (std::getenv("CONFIG_FUZZ_VERBOSE") != nullptr) {  // to see what a seed reaches
        static_cast<void>(std::fprintf(stderr, "%s\n%s", result.config ? "loaded" : "errors:",
                                       postern::conf::format_errors(result.errors).c_str()));
    }
    require(result.config.has_value() == result.errors.empty());
    check_errors(result.errors, file.string());
    if (result.config) {
        require(result.config->file == file);
        check_config(*result.config);
    }
    return 0;
}
