"""The machine's floor under a TLS mail proxy's CPU per connection, measured in the same run as
the proxies (tests/bench/README.md, "The floor"):

- TLS floor: the server CPU OpenSSL alone costs per TLS 1.3 connection, with no kernel TCP
  (`postern-bench-floor --handshakes N`, socketpairs in one process, tls_floor_cpu.cpp);
- TCP floor: the CPU a minimal plaintext relay costs per connection (`postern-bench-relay`,
  plain_relay.cpp: accept, backend connect, relay the greeting, close), driven by the load
  generator's handshake scenario in plaintext and measured like the proxies.

Each handshake row's floor is TLS + TCP; every proxy's CPU per connection is shown as a
multiple of it. Also here: the memory floor under the idle rows, the heap OpenSSL alone needs
per idle TLS 1.3 server connection (`postern-bench-floor --sessions N`, tls_floor.cpp).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import peers as P
from cells import GeneratorError, free_ports, last_json
from scenario_set import PROXY_CPUS

if TYPE_CHECKING:
    from bench import Bench
    from scenario_set import Scenario

# handshake scenario -> the TLS floor figure that matches it
FLOOR_OF = {"hs-imap-ecdsa": "ecdsa_us", "hs-imap-rsa": "rsa_us",
            "hs-imap-resumed": "resumed_us", "hs-pop3-ecdsa": "ecdsa_us",
            "hs-smtp-ecdsa": "ecdsa_us"}
TLS_TITLES = {"ecdsa_us": "full handshake, ECDSA P-256", "rsa_us": "full handshake, RSA-2048",
              "resumed_us": "resumed handshake (ticket), ECDSA"}


class Relay(P.Peer):
    """postern-bench-relay, started and measured like a proxy (IMAP only, plaintext)."""

    def __init__(self, binary: Path, workdir: Path, backend: dict[str, int], port: int) -> None:
        super().__init__("relay", str(binary), workdir, None, backend,  # type: ignore[arg-type]
                         {("imap", "none"): port})

    def write_config(self, workers: int) -> list[str]:
        port = self.ports[("imap", "none")]
        return [self.binary, "--listen", f"127.0.0.1:{port}",
                "--backend", f"127.0.0.1:{self.backend['imap']}"]


def measure_tls(bench: Bench) -> None:
    """postern-bench-floor --handshakes on core 0, like `openssl speed`."""
    binary = bench.tools / "postern-bench-floor"
    cmd = ["taskset", "-c", "0", str(binary), "--handshakes", str(bench.scale.floor_handshakes)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        bench.tls_cpu_floor_error = f"postern-bench-floor --handshakes: {e}"
        return
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        bench.tls_cpu_floor_error = ("postern-bench-floor --handshakes: " +
                                     (out.stderr.strip()[-200:] or f"exit {out.returncode}"))
        return
    bench.tls_cpu_floor = json.loads(lines[-1])


def measure_memory(bench: Bench) -> None:
    """The heap OpenSSL alone needs per idle TLS 1.3 server connection (tls_floor.cpp), on
    core 0 like `openssl speed`: the floor under the idle rows' KiB per session."""
    if not bench.floor_bin.exists():
        bench.floor_error = f"{bench.floor_bin} not found (build target postern-bench-floor)"
        return
    cmd = ["taskset", "-c", "0", str(bench.floor_bin),
           "--sessions", str(bench.scale.floor_sessions)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        result = last_json(out.stdout) if "{" in out.stdout else {}
    except (subprocess.TimeoutExpired, GeneratorError, ValueError) as e:
        bench.floor_error = f"postern-bench-floor: {e}"
        return
    if out.returncode != 0 or not result.get("bytes_per_session"):
        bench.floor_error = ("postern-bench-floor: " + (out.stderr.strip()[-200:]
                                                       or f"exit {out.returncode}"))
        return
    bench.floor = result


def run_tcp(bench: Bench, sc: Scenario) -> None:
    """The TCP floor: postern-bench-relay on core 0, loaded like a proxy in `sc` but in
    plaintext."""
    binary = bench.tools / "postern-bench-relay"
    if not binary.exists():
        bench.tcp_floor_error = f"{binary} not found (build target postern-bench-relay)"
        return
    relay = Relay(binary, bench.tmp / "relay", bench.backend, free_ports(1)[0])
    args = tuple(a for a in sc.args if a != "--resume")  # --key is ignored in plaintext
    try:
        relay.start(1, PROXY_CPUS[1])
        port = relay.ports[("imap", "none")]
        bench.gen("handshake", port, "imap", "none", ("--count", "8", "--concurrency", "2"),
                  timeout=60)  # warm-up, not counted
        pids = relay.pids()
        cpu0 = P.cpu_seconds(pids)
        r = bench.gen("handshake", port, "imap", "none", args, timeout=120)
        record_tcp(bench, P.cpu_seconds(pids) - cpu0, r)
    except (GeneratorError, RuntimeError) as e:
        bench.tcp_floor_error = f"postern-bench-relay: {e}"
    finally:
        relay.stop()


def record_tcp(bench: Bench, cpu_seconds: float, result: dict) -> None:
    """One relay run's figures; the one kept is the best (lowest CPU per connection) over the
    rounds, as for the proxies."""
    n = result.get("completed", 0)
    if not n:
        bench.tcp_floor_error = "postern-bench-relay: " + \
            (result.get("last_error") or "no connection")
        return
    run = {"cpu_us": cpu_seconds * 1e6 / n, "rate": result.get("rate", 0.0), "completed": n,
           "errors": result.get("errors", 0)}
    bench.tcp_floor_runs.append(run)
    best = min(bench.tcp_floor_runs, key=lambda x: x["cpu_us"])
    bench.tcp_floor = {**best, "runs": bench.tcp_floor_runs}
    print(f"  tcp floor (postern-bench-relay): {run['cpu_us']:.1f} µs CPU per conn, "
          f"{run['rate']:.0f} conn/s", flush=True)


def floor_us(bench: Bench, key: str) -> float:
    """TLS + TCP floor for a handshake scenario, or 0 if either is missing."""
    tls = bench.tls_cpu_floor.get(FLOOR_OF.get(key, ""), 0.0)
    tcp = bench.tcp_floor.get("cpu_us", 0.0)
    return tls + tcp if tls and tcp else 0.0


def multiples(bench: Bench, scs: list) -> dict[str, dict[str, float]]:
    """scenario -> peer -> proxy CPU per connection / (TLS floor + TCP floor), 1 worker."""
    out: dict[str, dict[str, float]] = {}
    for sc in scs:
        floor = floor_us(bench, sc.key)
        if not floor:
            continue
        for peer in bench.peers:
            c = bench.cells.get((sc.key, 1, peer.name))
            if c is not None and c.status == "ok" and c.values.get("cpu_us"):
                out.setdefault(sc.key, {})[peer.name] = c.values["cpu_us"] / floor
    return out


def render(bench: Bench, scs: list, titles: dict[str, str], fmt) -> list[str]:
    tls, tcp = bench.tls_cpu_floor, bench.tcp_floor
    lines = ["| floor, no proxy | CPU µs per connection |", "|---|---:|"]
    for key, title in TLS_TITLES.items():
        if key in tls:
            steps = tls[key.replace("_us", "_handshake_us")]
            v = f"{fmt(tls[key])} (handshake steps alone {fmt(steps)})"
        else:
            v = f"no figure ({bench.tls_cpu_floor_error or 'not measured'})"
        lines.append(f"| TLS floor, {title}: OpenSSL's server side alone over socketpairs "
                     f"(`postern-bench-floor --handshakes`) | {v} |")
    v = fmt(tcp["cpu_us"]) if tcp else \
        f"no figure ({bench.tcp_floor_error or 'no handshake scenario ran'})"
    lines.append("| TCP floor: a minimal plaintext relay (`postern-bench-relay`): accept, backend "
                 f"connect, relay the greeting, close | {v} |")
    mult = multiples(bench, scs)
    if not mult:
        return lines
    names = [p.name for p in bench.peers]
    lines += ["", "Proxy CPU per connection as a multiple of the floor (TLS + TCP), 1 worker: "
              "**the number to drive down**.", "",
              "| handshake | floor µs | " + " | ".join(titles[n] for n in names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    for sc in scs:
        if sc.key not in mult:
            continue
        row = [sc.title, fmt(floor_us(bench, sc.key))]
        row += [f"{mult[sc.key][n]:.2f} ×" if n in mult[sc.key] else "—" for n in names]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def raw(bench: Bench, scs: list) -> dict:
    return {"tls_cpu": bench.tls_cpu_floor, "tcp": bench.tcp_floor,
            "floor_us": {sc.key: f for sc in scs if (f := floor_us(bench, sc.key))},
            "multiples": multiples(bench, scs)}
