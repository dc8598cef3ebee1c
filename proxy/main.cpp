// postern's command line: run | check | --version. Parsing only; the work is in runtime.cpp
// and check.cpp.

#include "conf/load.hpp"
#include "proxy/check.hpp"
#include "proxy/log.hpp"
#include "proxy/runtime.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
    CLI::App app{
        "postern: TLS and STARTTLS edge proxy for SMTP, IMAP and POP3 with "
        "per-domain certificates chosen by SNI"};
    app.set_version_flag("--version", std::string("postern ") + POSTERN_VERSION);
    app.require_subcommand(1);

    std::string config_file = "/etc/postern/postern.toml";
    auto* run = app.add_subcommand("run", "Run the proxy in the foreground (logs to stderr)");
    run->add_option("-c,--config", config_file, "Config file")->capture_default_str();
    auto* check = app.add_subcommand(
        "check", "Validate the config, load every certificate and key, print what is served");
    check->add_option("-c,--config", config_file, "Config file")->capture_default_str();

    CLI11_PARSE(app, argc, argv);

    if (check->parsed()) {
        return postern::proxy::check(config_file, std::cout, std::cerr);
    }
    auto loaded = postern::conf::load_config(config_file);
    if (!loaded.config) {
        std::cerr << postern::conf::format_errors(loaded.errors);
        return 1;
    }
    if (!postern::proxy::setup_logging(loaded.config->server.log_level)) {
        std::cerr << "unknown log level " << loaded.config->server.log_level << '\n';
        return 1;
    }
    return postern::proxy::run(*loaded.config);
}
