"""The run phases: every scenario against every proxy, the proxies in turn within one
generator run (run_together), the idle scenarios one proxy at a time (run_idle), and the
merging of repeated runs into one figure per cell (merge_runs)."""

from __future__ import annotations

import json
import select
import statistics
import subprocess
import time
from typing import TYPE_CHECKING

import floors
import peers as P
import scrape
import table
from cells import Cell, GeneratorError, last_json
from scenario_set import CLIENT_CPUS, PROXY_CPUS, Scenario

if TYPE_CHECKING:
    from bench import Bench


def unsupported(sc: Scenario, peer: P.Peer) -> Cell | None:
    if peer.supports(sc.protocol, sc.tls):
        return None
    if isinstance(peer, P.Postern) and sc.tls == "starttls":
        return Cell("skipped", note="postern STARTTLS not yet available")
    return Cell("n/a")


def run_idle(bench: Bench, sc: Scenario, peer: P.Peer) -> Cell:
    if not peer.supports(sc.protocol, sc.tls):
        return Cell("n/a")
    port = peer.ports[(sc.protocol, sc.tls)]
    peer.start(1, PROXY_CPUS[1])
    proc = None
    try:
        # Warm up both paths once (greeting only; login), so first-use allocations are
        # in the "before" figure rather than counted per session.
        bench.gen("handshake", port, sc.protocol, sc.tls, ("--count", "4", "--concurrency", "2"),
                  timeout=60)
        bench.gen("latency", port, sc.protocol, sc.tls, ("--count", "5", "--warmup", "0"),
                  timeout=60)
        time.sleep(bench.scale.idle_settle)
        pids = peer.pids()
        rss0 = P.rss_kib(pids)
        cmd = ["taskset", "-c", CLIENT_CPUS, bench.generator, "idle",
               "--connect", f"127.0.0.1:{port}", "--protocol", sc.protocol, "--tls", sc.tls,
               "--sessions", str(bench.scale.idle_sessions), "--concurrency", "64",
               "--hold", "600", *sc.args]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        ready_wait = 300 if not bench.quick else 60
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
        time.sleep(bench.scale.idle_settle)
        cpu0, t0 = P.cpu_seconds(pids), time.monotonic()
        time.sleep(bench.scale.idle_hold)
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
            note = (f"{sessions} of {bench.scale.idle_sessions} opened, "
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


def run_together(bench: Bench, sc: Scenario, live: list[P.Peer]) -> dict[str, Cell]:
    """One run of a scenario against every live proxy that supports it, in a single
    generator run that interleaves them (postern-bench --also): handshakes and throughput
    load each in turn, half a second at a time; latency sends each NOOP to the next one,
    and to the backend fixture directly (plaintext), in a shuffled order. Every figure is
    then taken over the same moments; latency figures are the proxy's percentiles minus the
    direct ones from the same run."""
    cells: dict[str, Cell] = {}
    measured = []
    for peer in live:
        if (cell := unsupported(sc, peer)) is not None:
            cells[peer.name] = cell
        else:
            measured.append(peer)
    if not measured:
        return cells
    # Each generator run starts with the next proxy, so no process is always the first
    # target: in one full run the process that always was came out 11 % cheaper per NOOP
    # than its twin; with the place rotating, two processes of one binary still differ by up
    # to 10 % in a run (instance noise, which the twins in scrape.py measure).
    shift = bench.runs_together % len(measured)
    bench.runs_together += 1
    measured = measured[shift:] + measured[:shift]
    address = {p.name: f"127.0.0.1:{p.ports[(sc.protocol, sc.tls)]}" for p in measured}
    direct_address = f"127.0.0.1:{bench.backend[sc.protocol]}"
    extra = list(sc.args)
    for peer in measured[1:]:
        extra += ["--also", address[peer.name]]
    seconds = max(bench.scale.throughput_seconds, bench.scale.handshake_seconds)
    if sc.kind == "latency":
        extra += ["--direct", direct_address]
        seconds = bench.scale.latency_seconds
    cpu0 = {p.name: P.cpu_seconds(p.pids()) for p in measured}
    scrapes0 = {p.name: scrape.before(p) for p in measured}
    try:
        lines = bench.gen_lines(sc.kind, measured[0].ports[(sc.protocol, sc.tls)],
                                sc.protocol, sc.tls, tuple(extra),
                                timeout=120 + 2 * seconds * len(measured))
    except GeneratorError as e:
        return cells | {p.name: Cell("failed", note=str(e)) for p in measured}
    by_address = {line.get("connect"): line for line in lines}
    direct = by_address.get(direct_address, {})
    if sc.kind == "latency":
        bench.directs.append(direct)
        keys = ("samples", "p50_us", "p99_us", "p999_us")
        bench.direct = {k: statistics.median(d.get(k, 0.0) for d in bench.directs)
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


def run_phase(bench: Bench, workers: int, scs: list[Scenario]) -> None:
    live = []
    for peer in bench.peers:
        ok, why = peer.workers_supported(workers)
        if not ok:
            for sc in scs:
                if sc.kind != "idle" and workers in sc.workers:
                    bench.cells[(sc.key, workers, peer.name)] = Cell("skipped", note=why)
            continue
        peer.start(workers, PROXY_CPUS[workers])
        live.append(peer)
    runs: dict[tuple[str, str], list[Cell]] = {}
    try:
        # Scenario-major, peer-minor, and the whole sequence again per round: drifting
        # background load hits every peer alike, and each figure gets samples minutes apart.
        for _round in range(bench.scale.rounds):
            for sc in scs:
                if sc.kind in ("idle", "latency") or workers not in sc.workers:
                    continue
                cells = run_together(bench, sc, live)
                for peer in live:
                    runs.setdefault((sc.key, peer.name), []).append(cells[peer.name])
                    progress(bench, sc, workers, peer, cells[peer.name])
            hs = [sc for sc in scs if sc.kind == "handshake" and workers in sc.workers]
            if workers == 1 and hs:
                floors.run_tcp(bench, hs[0])
        latency = [sc for sc in scs if sc.kind == "latency" and workers in sc.workers]
        for _round in range(bench.scale.latency_rounds if latency else 0):
            for sc in latency:
                cells = run_together(bench, sc, live)
                for peer in live:
                    runs.setdefault((sc.key, peer.name), []).append(cells[peer.name])
                    progress(bench, sc, workers, peer, cells[peer.name])
        kinds = {sc.key: sc.kind for sc in scs}
        for (key, name), cells in runs.items():
            bench.cells[(key, workers, name)] = merge_runs(kinds[key], cells)
    finally:
        for peer in live:
            peer.stop()


def progress(bench: Bench, sc: Scenario, workers: int, peer: P.Peer, cell: Cell) -> None:
    shown = {k: round(v, 1) for k, v in cell.values.items() if not k.startswith("raw_")}
    print(f"  [{time.monotonic() - bench.started:6.1f}s] {workers}w {sc.key:26} "
          f"{peer.name:15} {cell.status:7} {shown} {cell.note}", flush=True)


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
