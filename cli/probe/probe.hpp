#pragma once
// `postern probe HOST:PORT`: a one-shot TLS client for checking a mail server's certificates
// in production, postern's or any other. It connects (speaking the plaintext STARTTLS
// dialogue first when asked), handshakes with SNI, and reports the TLS version and cipher, the
// chain the server sent, whether the name matches, whether the chain verifies, and the
// server's capabilities after TLS. Blocking sockets with a timeout on every connect, read and
// write; no event loop and no logger. The dialogue is cli/probe/dialogue.hpp, the socket
// cli/probe/connection.hpp, the TLS context tls/client_context.hpp, the report and its exit
// codes cli/probe/report.hpp; this file checks the options and drives them.

#include <iosfwd>
#include <string>

namespace postern::cli {

struct ProbeOptions {
    std::string target;           // "host:port" or "[v6]:port"
    std::string starttls;         // "", "smtp", "imap" or "pop3"
    std::string servername;       // SNI and name to check; empty: HOST (no SNI for an IP literal)
    std::string cafile;           // PEM trust anchors instead of the system store; empty: system
    std::string timeout = "10s";  // per connect, read and write: "10s", "500ms" or seconds
    bool json = false;
};

// Runs the probe and prints its report on `out` (text, or JSON with options.json). On failure
// the reason also goes to `err` as "postern probe: ...". Returns the exit code (0 ok,
// 1 usage/connection/protocol error, 2 handshake failed, 3 name mismatch, 4 chain does not
// verify). Never throws for anything the server does.
[[nodiscard]] int run_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err);

}  // namespace postern::cli
