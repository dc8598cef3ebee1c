#pragma once
// postern-bench-floor --handshakes N (tls_floor_cpu.cpp): server CPU per TLS 1.3 connection,
// OpenSSL alone over socketpairs; prints one JSON line and returns the exit status.

namespace postern::bench::tls_floor {

[[nodiscard]] int run_cpu(int handshakes);

}  // namespace postern::bench::tls_floor
