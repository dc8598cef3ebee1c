// postern's command line: run | check | probe | --version. Parsing only; the work is in
// runtime.cpp, check.cpp and probe.cpp.

#include "cli/check.hpp"
#include "cli/probe/probe.hpp"
#include "conf/load.hpp"
#include "proxy/log.hpp"
#include "proxy/runtime.hpp"

#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

namespace {

int run_command_line(int argc, char** argv) {
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
    bool check_json = false;
    check->add_flag("--json", check_json,
                    "Print only the certificate report (names, key, expiry, chain, TLSA 3 1 1) as "
                    "one JSON object");

    postern::cli::ProbeOptions probe_options;
    auto* probe = app.add_subcommand(
        "probe",
        "Connect to a mail server as a client (STARTTLS first with --starttls), handshake with "
        "SNI, and report the TLS version, cipher, certificate chain, name match, chain "
        "verification and the capabilities offered after TLS");
    probe->add_option("target", probe_options.target, "HOST:PORT or [IPv6]:PORT")->required();
    probe
        ->add_option("--starttls", probe_options.starttls,
                     "Speak this protocol's plaintext dialogue and STARTTLS/STLS first "
                     "(default: implicit TLS)")
        ->check(CLI::IsMember({"smtp", "imap", "pop3"}));
    probe->add_option("--servername", probe_options.servername,
                      "Name sent as SNI and checked against the certificate (default: HOST; "
                      "no SNI for an IP address, which is checked as an address)");
    probe
        ->add_option("--cafile", probe_options.cafile,
                     "PEM file of trusted CAs to verify against instead of the system store")
        ->check(CLI::ExistingFile);
    probe
        ->add_option("--timeout", probe_options.timeout,
                     "Limit for connecting and for each read and write: 10s, 500ms, or seconds")
        ->capture_default_str();
    probe->add_flag("--json", probe_options.json, "Print the report as one JSON object");
    probe->footer(
        "Exit status: 0 the name matches and the chain verifies; 1 usage, connection or "
        "protocol error; 2 TLS handshake failed; 3 the certificate does not match the name; "
        "4 the chain does not verify.");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        // probe documents 1 for usage errors; run and check keep CLI11's codes
        return code != 0 && probe->parsed() ? 1 : code;
    }

    if (probe->parsed()) {
        return postern::cli::run_probe(probe_options, std::cout, std::cerr);
    }
    if (check->parsed()) {
        return postern::cli::check(config_file, std::cout, std::cerr, check_json);
    }
    auto files = postern::conf::take_file_snapshot(config_file);
    auto loaded = postern::conf::load_config(*files);
    if (!loaded.config) {
        std::cerr << postern::conf::format_errors(loaded.errors);
        return 1;
    }
    if (!postern::cli::has_something_to_serve(*loaded.config, config_file, std::cerr)) {
        return 1;
    }
    if (!postern::proxy::setup_logging(loaded.config->server.log_level,
                                       loaded.config->server.log_format)) {
        std::cerr << "unknown log level " << loaded.config->server.log_level << '\n';
        return 1;
    }
    return postern::proxy::run(*loaded.config, std::move(files),
                               std::vector<std::string>(argv + 1, argv + argc));
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run_command_line(argc, argv);
    } catch (const std::exception& e) {  // e.g. std::bad_alloc while reading the config
        std::cerr << "postern: " << e.what() << '\n';
    } catch (...) {
        std::cerr << "postern: unknown exception\n";
    }
    return 1;
}
