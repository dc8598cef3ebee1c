#!/usr/bin/env python3
"""The postern benchmark: the same scenarios against postern, HAProxy, stunnel and nginx's mail
proxy, in one run, with the same certificates, backend fixture and worker count, the proxy
pinned to core 0 and the load generator (and the backend fixture) to core 1. Writes a markdown
table (README.md in this folder says how to read it).

Run it through scripts/bench, which installs the peers and builds the tools:
    scripts/bench            full run (about 15 minutes)
    scripts/bench --quick    tiny counts, seconds; checks only that every scenario gave numbers
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import floors  # noqa: E402
import machine  # noqa: E402
import peers as P  # noqa: E402
import phases  # noqa: E402
import scrape  # noqa: E402
import table  # noqa: E402
from cells import Cell, GeneratorError, free_ports, json_lines  # noqa: E402
from scenario_set import CLIENT_CPUS, FULL, PROXY_CPUS, QUICK, scenarios  # noqa: E402

# --peers, in run order
PEERS = ("postern", scrape.NAME, scrape.TWIN, scrape.NAME_TWIN, "haproxy", "stunnel", "nginx")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.scale = QUICK if args.quick else FULL
        self.tools = Path(args.tools).resolve()
        args.postern = str(Path(args.postern).resolve())
        if args.baseline:
            args.baseline = str(Path(args.baseline).resolve())  # it runs in its own folder
        self.generator = str(self.tools / "postern-bench")
        self.backend_bin = str(self.tools / "postern-bench-backend")
        self.floor_bin = self.tools / "postern-bench-floor"
        self.tmp = Path(tempfile.mkdtemp(prefix="postern-bench-"))
        self.backend_proc: subprocess.Popen | None = None
        self.peers: list[P.Peer] = []
        self.cells: dict[tuple[str, int, str], Cell] = {}  # (scenario, workers, peer) -> cell
        self.notes: list[str] = []
        self.direct: dict = {}  # the median of the baselines below
        self.directs: list[dict] = []  # one per latency round
        self.runs_together = 0  # generator runs so far: whose turn it is to go first
        self.backend: dict[str, int] = {}
        self.speed: dict[str, float] = {}
        self.floor: dict = {}  # postern-bench-floor's result line
        self.floor_error = ""
        self.tls_cpu_floor: dict = {}  # postern-bench-floor --handshakes (floors.py)
        self.tls_cpu_floor_error = ""
        self.tcp_floor: dict = {}  # the best postern-bench-relay run (floors.py)
        self.tcp_floor_runs: list[dict] = []
        self.tcp_floor_error = ""
        self.started = time.monotonic()
        self.load_before = os.getloadavg()

    # ---------------------------------------------------------------------------- generator

    def gen(self, mode: str, port: int, protocol: str, tls: str, extra: tuple[str, ...],
            timeout: float) -> dict:
        lines = self.gen_lines(mode, port, protocol, tls, extra, timeout)
        if not lines:
            raise GeneratorError("no result line in generator output")
        return lines[-1]

    def gen_lines(self, mode: str, port: int, protocol: str, tls: str, extra: tuple[str, ...],
                  timeout: float) -> list[dict]:
        cmd = ["taskset", "-c", CLIENT_CPUS, self.generator, mode,
               "--connect", f"127.0.0.1:{port}", "--protocol", protocol, "--tls", tls, *extra]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise GeneratorError(f"generator timed out after {timeout:.0f} s") from e
        lines = json_lines(out.stdout)
        if out.returncode != 0:
            why = ((lines[-1].get("last_error") if lines else "") or out.stderr.strip()[-200:]
                   or f"exit {out.returncode}")
            raise GeneratorError(why)
        return lines

    # ---------------------------------------------------------------------------- setup

    def start_backend(self) -> dict[str, int]:
        imap, pop3, smtp = free_ports(3)
        self.backend_proc = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPUS, self.backend_bin, "--imap", f"127.0.0.1:{imap}",
             "--pop3", f"127.0.0.1:{pop3}", "--smtp", f"127.0.0.1:{smtp}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, start_new_session=True)
        ready, _, _ = select.select([self.backend_proc.stdout], [], [], 10)
        if not ready or self.backend_proc.stdout.readline().strip() != "ready":
            raise RuntimeError("backend fixture did not start")
        return {"imap": imap, "pop3": pop3, "smtp": smtp}

    def make_peers(self, pki: P.Pki, backend: dict[str, int]) -> None:
        def ports() -> dict[tuple[str, str], int]:
            keys = [(p, t) for p in P.PROTOCOLS for t in ("implicit", "starttls")]
            return dict(zip(keys, free_ports(len(keys))))

        self.peers = [
            P.Postern(self.args.postern, self.tmp / "postern", pki, backend, ports()),
            scrape.MetricsPostern(self.args.postern, self.tmp / "metrics", pki, backend, ports(),
                                  free_ports(1)[0], self.scale.scrape_interval,
                                  {int(c) for c in CLIENT_CPUS.split(",")}),
            P.Postern(self.args.postern, self.tmp / "twin", pki, backend, ports(),
                      name=scrape.TWIN),
            scrape.MetricsPostern(self.args.postern, self.tmp / "metrics-twin", pki, backend,
                                  ports(), free_ports(1)[0], self.scale.scrape_interval,
                                  {int(c) for c in CLIENT_CPUS.split(",")}, name=scrape.NAME_TWIN),
            P.Haproxy(self.tmp / "haproxy", pki, backend, ports()),
            P.Stunnel(self.tmp / "stunnel", pki, backend, ports()),
            P.Nginx(self.tmp / "nginx", pki, backend, ports(), free_ports(1)[0]),
        ]
        wanted = set(self.args.peers.split(","))
        self.peers = [p for p in self.peers if p.name in wanted]
        if self.args.baseline:
            # Another postern build in the same run (interleaved like the peers), so a change
            # is judged against the same moments of the machine, not against last week's run.
            self.peers.insert(1, P.Postern(self.args.baseline, self.tmp / "baseline", pki,
                                           backend, ports(), name="baseline"))

    def probe_postern(self) -> None:
        """STARTTLS and worker support are detected, never assumed."""
        postern = next((p for p in self.peers if isinstance(p, P.Postern)), None)
        if postern is None:
            return
        postern.start(1, PROXY_CPUS[1])
        try:
            port = postern.ports[("imap", "starttls")]
            self.gen("handshake", port, "imap", "starttls",
                     ("--count", "2", "--concurrency", "1", "--timeout", "2"), timeout=20)
            self.notes.append("postern: STARTTLS listeners answered the probe; STARTTLS rows run.")
        except GeneratorError as e:
            for peer in self.peers:
                if isinstance(peer, P.Postern):
                    peer.disable_starttls()
            self.notes.append(
                "postern: a `tls = \"starttls\"` listener did not speak STARTTLS to the probe "
                f"({e}); its STARTTLS rows are marked *not yet*.")
        finally:
            postern.stop()
        ok, why = postern.workers_supported(2)
        if not ok:
            self.notes.append(f"postern: 2-worker rows skipped: {why}.")

    # ---------------------------------------------------------------------------- main

    def run(self) -> int:
        only = [o for o in self.args.only.split(",") if o] or [""]
        scs = [sc for sc in scenarios(self.scale)
               if any(o in sc.key or o == sc.kind for o in only)]
        try:
            print(f"postern bench ({'quick' if self.quick else 'full'}) in {self.tmp}", flush=True)
            pki = P.make_pki(self.tmp / "pki")
            backend = self.backend = self.start_backend()
            self.make_peers(pki, backend)
            self.probe_postern()
            phases.run_phase(self, 1, scs)
            phases.run_phase(self, 2, scs)
            for sc in scs:
                if sc.kind != "idle":
                    continue
                for peer in self.peers:
                    before = scrape.before(peer)
                    cell = scrape.attach(phases.run_idle(self, sc, peer), peer, before)
                    self.cells[(sc.key, 1, peer.name)] = cell
                    phases.progress(self, sc, 1, peer, cell)
            machine.openssl_speed(self)
            floors.measure_memory(self)
            floors.measure_tls(self)
        finally:
            for peer in self.peers:
                peer.stop()
            if self.backend_proc is not None:
                P.stop_process(self.backend_proc)
        elapsed = time.monotonic() - self.started
        report = table.render(self, scs, elapsed)
        print()
        print(report)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        out.with_suffix(".json").write_text(json.dumps(table.raw(self, scs, elapsed), indent=1))
        print(f"written: {out} (+ {out.with_suffix('.json').name})")
        failures = [f"{k[0]} ({k[1]} worker) {k[2]}: {c.note}" for k, c in self.cells.items()
                    if c.status == "failed"]
        failures += scrape.failures(self)
        missing = table.missing_speed(self)
        if missing:
            failures.append(f"openssl speed gave no figure for {', '.join(missing)}")
        if not self.floor:
            failures.append(f"TLS memory floor gave no figure: {self.floor_error}")
        if not self.tls_cpu_floor:
            failures.append(f"TLS CPU floor gave no figure: {self.tls_cpu_floor_error}")
        if any(sc.kind == "handshake" for sc in scs) and not self.tcp_floor:
            failures.append(f"TCP floor gave no figure: {self.tcp_floor_error}")
        if any(sc.kind == "latency" for sc in scs) and not self.direct.get("samples"):
            failures.append("direct latency baseline gave no samples")
        for f in failures:
            print(f"FAILED: {f}", file=sys.stderr)
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return 1 if failures else 0


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny counts: a smoke test, seconds")
    ap.add_argument("--postern", default=str(root / "build-release" / "postern"),
                    help="postern binary")
    ap.add_argument("--tools", required=True,
                    help="folder with postern-bench, postern-bench-backend and "
                         "postern-bench-floor")
    ap.add_argument("--out", default=str(root / "tests" / "bench" / "results" / "latest.md"),
                    help="where to write the table (a .json with raw figures goes beside it)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (configs, logs)")
    ap.add_argument("--only", default="",
                    help="run only scenarios whose key contains one of these, or of these kinds "
                         "(comma-separated: idle, hs-imap, handshake,latency)")
    ap.add_argument("--baseline", default="",
                    help="also run this postern binary (e.g. built from an earlier commit) as "
                         "the peer 'baseline', interleaved with the others")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated subset of the proxies to run "
                         f"({scrape.NAME}: postern with its metrics endpoint on and scraped)")
    args = ap.parse_args()
    if unknown := set(args.peers.split(",")) - set(PEERS):
        ap.error(f"--peers: no proxy named {', '.join(sorted(unknown))} "
                 f"(one of {', '.join(PEERS)})")
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
