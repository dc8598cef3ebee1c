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
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import floors  # noqa: E402
import peers as P  # noqa: E402
import scrape  # noqa: E402
import table  # noqa: E402
from cells import Cell, GeneratorError, free_ports, json_lines, last_json  # noqa: E402
from scenario_set import (CLIENT_CPUS, FULL, PROXY_CPUS, QUICK, Scenario,  # noqa: E402
                          scenarios)

# --peers, in run order
PEERS = ("postern", scrape.NAME, scrape.TWIN, scrape.NAME_TWIN, "haproxy", "stunnel", "nginx")


def merge_runs(kind: str, cells: list[Cell]) -> Cell:
    """Merges repeated runs of one scenario against one proxy. Latency figures are the median
    over the rounds that ran; every other figure is the best run's (highest for
    higher-is-better figures, lowest otherwise), so that a burst of other work on the machine
    during one run does not decide the figure."""
    ok = [c for c in cells if c.status == "ok"]
    if not ok:
        return cells[-1]
    higher = {key: up for key, _figure, up in table.METRICS[kind]}
    higher["resumed_pct"] = True
    values: dict[str, float] = {}
    for key in ok[0].values:
        runs = [c.values[key] for c in ok if key in c.values]
        if kind == "latency":
            values[key] = statistics.median(runs)
        else:
            values[key] = max(runs) if higher.get(key, False) else min(runs)
    notes = []
    for c in cells:
        if c.note and c.note not in notes:
            notes.append(c.note if c.status == "ok" else f"one run failed: {c.note}")
    # run_values: each round's figures (None if it failed), for the metrics on/off noise.
    return Cell("ok", values, "; ".join(notes), {
        "runs": [c.raw for c in cells],
        "run_values": [c.values if c.status == "ok" else None for c in cells]})


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

    # ---------------------------------------------------------------------------- scenarios

    @staticmethod
    def unsupported(sc: Scenario, peer: P.Peer) -> Cell | None:
        if peer.supports(sc.protocol, sc.tls):
            return None
        if isinstance(peer, P.Postern) and sc.tls == "starttls":
            return Cell("skipped", note="postern STARTTLS not yet available")
        return Cell("n/a")

    def run_idle(self, sc: Scenario, peer: P.Peer) -> Cell:
        if not peer.supports(sc.protocol, sc.tls):
            return Cell("n/a")
        port = peer.ports[(sc.protocol, sc.tls)]
        peer.start(1, PROXY_CPUS[1])
        proc = None
        try:
            # Warm up both paths once (greeting only; login), so first-use allocations are
            # in the "before" figure rather than counted per session.
            self.gen("handshake", port, sc.protocol, sc.tls, ("--count", "4", "--concurrency", "2"),
                     timeout=60)
            self.gen("latency", port, sc.protocol, sc.tls, ("--count", "5", "--warmup", "0"),
                     timeout=60)
            time.sleep(self.scale.idle_settle)
            pids = peer.pids()
            rss0 = P.rss_kib(pids)
            cmd = ["taskset", "-c", CLIENT_CPUS, self.generator, "idle",
                   "--connect", f"127.0.0.1:{port}", "--protocol", sc.protocol, "--tls", sc.tls,
                   "--sessions", str(self.scale.idle_sessions), "--concurrency", "64",
                   "--hold", "600", *sc.args]
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
            ready_wait = 300 if not self.quick else 60
            ready, _, _ = select.select([proc.stdout], [], [], ready_wait)
            if not ready:
                raise GeneratorError(f"sessions not open after {ready_wait} s")
            line = proc.stdout.readline()
            if not line.startswith("{"):
                raise GeneratorError(f"generator: {proc.stderr.read()[-200:]}")
            opened = json.loads(line)
            sessions = opened["sessions"]
            if sessions == 0:
                raise GeneratorError(f"no session opened ({opened.get('last_error')})")
            time.sleep(self.scale.idle_settle)
            cpu0, t0 = P.cpu_seconds(pids), time.monotonic()
            time.sleep(self.scale.idle_hold)
            cpu1, t1 = P.cpu_seconds(pids), time.monotonic()
            rss1 = P.rss_kib(pids)
            proc.stdin.close()  # ends the hold
            proc.wait(timeout=120)
            final = last_json(proc.stdout.read())
            values = {"rss_kib": (rss1 - rss0) / sessions,
                      "cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0),
                      "rss_before_kib": rss0, "rss_after_kib": rss1}
            note = ""
            if opened.get("errors") or final.get("dropped"):
                note = (f"{sessions} of {self.scale.idle_sessions} opened, "
                        f"{final.get('dropped', 0)} dropped while idle "
                        f"({opened.get('last_error') or final.get('last_error')})")
            return Cell("ok", values, note, {"opened": opened, "final": final})
        except (GeneratorError, subprocess.TimeoutExpired, ValueError) as e:
            return Cell("failed", note=str(e))
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            peer.stop()

    def run_together(self, sc: Scenario, live: list[P.Peer]) -> dict[str, Cell]:
        """One run of a scenario against every live proxy that supports it, in a single
        generator run that interleaves them (postern-bench --also): handshakes and throughput
        load each in turn, half a second at a time; latency sends each NOOP to the next one,
        and to the backend fixture directly (plaintext), in a shuffled order. Every figure is
        then taken over the same moments; latency figures are the proxy's percentiles minus the
        direct ones from the same run."""
        cells: dict[str, Cell] = {}
        measured = []
        for peer in live:
            if (cell := self.unsupported(sc, peer)) is not None:
                cells[peer.name] = cell
            else:
                measured.append(peer)
        if not measured:
            return cells
        # Each generator run starts with the next proxy, so no process is always the first
        # target: in one full run the process that always was came out 11 % cheaper per NOOP
        # than its twin; with the place rotating, two processes of one binary still differ by up
        # to 10 % in a run (instance noise, which the twins in scrape.py measure).
        shift = self.runs_together % len(measured)
        self.runs_together += 1
        measured = measured[shift:] + measured[:shift]
        address = {p.name: f"127.0.0.1:{p.ports[(sc.protocol, sc.tls)]}" for p in measured}
        direct_address = f"127.0.0.1:{self.backend[sc.protocol]}"
        extra = list(sc.args)
        for peer in measured[1:]:
            extra += ["--also", address[peer.name]]
        seconds = max(self.scale.throughput_seconds, self.scale.handshake_seconds)
        if sc.kind == "latency":
            extra += ["--direct", direct_address]
            seconds = self.scale.latency_seconds
        cpu0 = {p.name: P.cpu_seconds(p.pids()) for p in measured}
        scrapes0 = {p.name: scrape.before(p) for p in measured}
        try:
            lines = self.gen_lines(sc.kind, measured[0].ports[(sc.protocol, sc.tls)],
                                   sc.protocol, sc.tls, tuple(extra),
                                   timeout=120 + 2 * seconds * len(measured))
        except GeneratorError as e:
            return cells | {p.name: Cell("failed", note=str(e)) for p in measured}
        by_address = {line.get("connect"): line for line in lines}
        direct = by_address.get(direct_address, {})
        if sc.kind == "latency":
            self.directs.append(direct)
            keys = ("samples", "p50_us", "p99_us", "p999_us")
            self.direct = {k: statistics.median(d.get(k, 0.0) for d in self.directs)
                           for k in keys}
        for peer in measured:
            r = by_address.get(address[peer.name])
            if r is None:
                cells[peer.name] = Cell("failed", note="no figures for this proxy")
                continue
            cpu = P.cpu_seconds(peer.pids()) - cpu0[peer.name]
            values = {}
            note = ""
            if sc.kind == "handshake":
                n = r.get("completed", 0)
                if not n:
                    cells[peer.name] = Cell("failed", note=r.get("last_error") or "no handshake")
                    continue
                values["rate"] = r.get("rate", 0.0)
                values["cpu_us"] = cpu * 1e6 / n
                if "--resume" in sc.args:
                    values["resumed_pct"] = 100.0 * r["resumed"] / n
                    if r["resumed"] < 0.9 * n:
                        note = f"only {r['resumed']} of {n} handshakes resumed"
            elif sc.kind == "throughput":
                mb = r.get("bytes", 0) / 1e6
                values["mb_s"] = r.get("mb_per_s", 0.0)
                values["cpu_us_mb"] = cpu * 1e6 / mb if mb else 0.0
                if not mb:
                    cells[peer.name] = Cell("failed", note="no payload moved")
                    continue
            else:
                if not r.get("samples"):
                    cells[peer.name] = Cell("failed", note="no round trips measured")
                    continue
                for p in ("p50", "p99", "p999"):
                    values[p] = r[f"{p}_us"] - direct.get(f"{p}_us", 0.0)
                    values[f"raw_{p}"] = r[f"{p}_us"]
                # What a round trip costs the proxy, whatever the scheduler did to its timing:
                # login and warm-up included (a few hundred of thousands).
                trips = r.get("samples", 0) + r.get("warmup", 0)
                values["cpu_us_rt"] = cpu * 1e6 / trips if trips else 0.0
            if r.get("errors"):
                note = (note + "; " if note else "") + \
                    f"{r['errors']} errors ({r.get('last_error')})"
            cells[peer.name] = scrape.attach(Cell("ok", values, note, r), peer,
                                             scrapes0[peer.name])
        return cells

    def run_phase(self, workers: int, scs: list[Scenario]) -> None:
        live = []
        for peer in self.peers:
            ok, why = peer.workers_supported(workers)
            if not ok:
                for sc in scs:
                    if sc.kind != "idle" and workers in sc.workers:
                        self.cells[(sc.key, workers, peer.name)] = Cell("skipped", note=why)
                continue
            peer.start(workers, PROXY_CPUS[workers])
            live.append(peer)
        runs: dict[tuple[str, str], list[Cell]] = {}
        try:
            # Scenario-major, peer-minor, and the whole sequence again per round: drifting
            # background load hits every peer alike, and each figure gets samples minutes apart.
            for _round in range(self.scale.rounds):
                for sc in scs:
                    if sc.kind in ("idle", "latency") or workers not in sc.workers:
                        continue
                    cells = self.run_together(sc, live)
                    for peer in live:
                        runs.setdefault((sc.key, peer.name), []).append(cells[peer.name])
                        self.progress(sc, workers, peer, cells[peer.name])
                hs = [sc for sc in scs if sc.kind == "handshake" and workers in sc.workers]
                if workers == 1 and hs:
                    self.tcp_floor_run(hs[0])
            latency = [sc for sc in scs if sc.kind == "latency" and workers in sc.workers]
            for _round in range(self.scale.latency_rounds if latency else 0):
                for sc in latency:
                    cells = self.run_together(sc, live)
                    for peer in live:
                        runs.setdefault((sc.key, peer.name), []).append(cells[peer.name])
                        self.progress(sc, workers, peer, cells[peer.name])
            kinds = {sc.key: sc.kind for sc in scs}
            for (key, name), cells in runs.items():
                self.cells[(key, workers, name)] = merge_runs(kinds[key], cells)
        finally:
            for peer in live:
                peer.stop()

    def tcp_floor_run(self, sc: Scenario) -> None:
        """The TCP floor: postern-bench-relay on core 0, loaded like a proxy in `sc` but in
        plaintext (floors.py)."""
        binary = self.tools / "postern-bench-relay"
        if not binary.exists():
            self.tcp_floor_error = f"{binary} not found (build target postern-bench-relay)"
            return
        relay = floors.Relay(binary, self.tmp / "relay", self.backend, free_ports(1)[0])
        args = tuple(a for a in sc.args if a != "--resume")  # --key is ignored in plaintext
        try:
            relay.start(1, PROXY_CPUS[1])
            port = relay.ports[("imap", "none")]
            self.gen("handshake", port, "imap", "none", ("--count", "8", "--concurrency", "2"),
                     timeout=60)  # warm-up, not counted
            pids = relay.pids()
            cpu0 = P.cpu_seconds(pids)
            r = self.gen("handshake", port, "imap", "none", args, timeout=120)
            floors.record_tcp(self, P.cpu_seconds(pids) - cpu0, r)
        except (GeneratorError, RuntimeError) as e:
            self.tcp_floor_error = f"postern-bench-relay: {e}"
        finally:
            relay.stop()

    def progress(self, sc: Scenario, workers: int, peer: P.Peer, cell: Cell) -> None:
        shown = {k: round(v, 1) for k, v in cell.values.items() if not k.startswith("raw_")}
        print(f"  [{time.monotonic() - self.started:6.1f}s] {workers}w {sc.key:26} "
              f"{peer.name:15} {cell.status:7} {shown} {cell.note}", flush=True)

    def openssl_speed(self) -> None:
        s = str(self.scale.speed_seconds)
        out = subprocess.run(["taskset", "-c", "0", "openssl", "speed", "-seconds", s,
                              "ecdsap256", "rsa2048", "ecdhx25519"],
                             capture_output=True, text=True, timeout=300).stdout
        if m := re.search(r"ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out):
            self.speed["ecdsa_sign"] = float(m.group(1))
        if m := re.search(r"^rsa 2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out, re.M):
            self.speed["rsa_sign"] = float(m.group(1))
        if m := re.search(r"ecdh \(X25519\)\s+[\d.]+s\s+([\d.]+)", out):
            self.speed["x25519"] = float(m.group(1))
        out = subprocess.run(["taskset", "-c", "0", "openssl", "speed", "-seconds", s,
                              "-bytes", "16384", "-evp", "aes-128-gcm"],
                             capture_output=True, text=True, timeout=300).stdout
        if m := re.search(r"^AES-128-GCM\s+([\d.]+)k", out, re.M):
            self.speed["aes_mb_s"] = float(m.group(1)) / 1000.0  # openssl's k = 1000 bytes

    def tls_floor(self) -> None:
        """The heap OpenSSL alone needs per idle TLS 1.3 server connection (tls_floor.cpp), on
        core 0 like `openssl speed`: the floor under the idle rows' KiB per session."""
        if not self.floor_bin.exists():
            self.floor_error = f"{self.floor_bin} not found (build target postern-bench-floor)"
            return
        cmd = ["taskset", "-c", "0", str(self.floor_bin),
               "--sessions", str(self.scale.floor_sessions)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            result = last_json(out.stdout) if "{" in out.stdout else {}
        except (subprocess.TimeoutExpired, GeneratorError, ValueError) as e:
            self.floor_error = f"postern-bench-floor: {e}"
            return
        if out.returncode != 0 or not result.get("bytes_per_session"):
            self.floor_error = ("postern-bench-floor: " + (out.stderr.strip()[-200:]
                                                          or f"exit {out.returncode}"))
            return
        self.floor = result

    # ---------------------------------------------------------------------------- main

    def machine(self) -> dict[str, str]:
        model = "?"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        versions = {p.name: p.version() for p in self.peers}
        openssl = subprocess.run(["openssl", "version"], capture_output=True,
                                 text=True).stdout.split(" (")[0].strip()
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        built = datetime.fromtimestamp(Path(self.args.postern).stat().st_mtime, timezone.utc)
        return {"cores": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
                "openssl": openssl, "commit": commit or "?",
                "postern_built": built.strftime("%Y-%m-%d %H:%M UTC"), **versions}

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
            self.run_phase(1, scs)
            self.run_phase(2, scs)
            for sc in scs:
                if sc.kind != "idle":
                    continue
                for peer in self.peers:
                    before = scrape.before(peer)
                    cell = scrape.attach(self.run_idle(sc, peer), peer, before)
                    self.cells[(sc.key, 1, peer.name)] = cell
                    self.progress(sc, 1, peer, cell)
            self.openssl_speed()
            self.tls_floor()
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
