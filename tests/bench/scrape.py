"""postern with its metrics endpoint on, scraped as Prometheus would scrape it, and the table
section that compares it with postern as the same run measured it (metrics on versus off).

The peer `postern+metrics` is postern with `[metrics] listen` on a free loopback port. While it
runs, a thread of the driver GETs /metrics at a fixed interval over one kept-alive connection
(as Prometheus does), so the cost of counting and of rendering both land in its figures. It
takes the load interleaved with every other proxy, so the ratio to postern's figure is taken
over the same moments of the machine (tests/bench/README.md, "Metrics on versus off").
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import peers as P

if TYPE_CHECKING:
    from bench import Bench
    from scenario_set import Scenario

NAME = "postern+metrics"
# A second process of each side, in the same run: two processes of one binary can differ by up
# to 10 % for a whole run, in either direction (seen both ways in reruns), which round-to-round
# spread does not show. How far each pair differs is that instance noise, measured in the run.
TWIN = "postern-twin"
NAME_TWIN = "postern+metrics-twin"
TIMEOUT = 2.0  # per scrape; Prometheus' default scrape_timeout is 10 s
# Differences this small are below what the bench resolves: two identical postern processes
# (`--baseline` with the same binary) measured side by side differ by about 1 % in rate, CPU
# and p50, round by round.
MIN_NOISE = 0.02


class Scraper:
    """GET /metrics every `interval` seconds until stopped; counts answers and errors."""

    def __init__(self, port: int, interval: float, cpus: set[int]) -> None:
        self.port = port
        self.interval = interval
        self.cpus = cpus
        self.ok = 0
        self.errors = 0
        self.last_error = ""
        self.bytes = 0
        self.seconds = 0.0  # summed time of the answered scrapes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scrape", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 1)

    def counts(self) -> dict[str, float]:
        return {"scrapes": self.ok, "scrape_errors": self.errors, "scrape_bytes": self.bytes,
                "scrape_seconds": self.seconds}

    def _run(self) -> None:
        try:
            os.sched_setaffinity(0, self.cpus)  # this thread only: a client, beside the generator
        except OSError:
            pass
        conn = None
        due = time.monotonic()
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
            t0 = time.monotonic()
            try:
                conn.request("GET", "/metrics")
                reply = conn.getresponse()
                body = reply.read()
                if reply.status != 200 or b"postern_build_info" not in body:
                    raise ValueError(f"status {reply.status}, {len(body)} bytes")
                self.ok += 1
                self.bytes += len(body)
                self.seconds += time.monotonic() - t0
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.errors += 1
                self.last_error = str(e) or type(e).__name__
                conn.close()
                conn = None
            due = max(due + self.interval, time.monotonic())  # late: skip, as Prometheus
            self._stop.wait(max(0.0, due - time.monotonic()))
        if conn is not None:
            conn.close()


class MetricsPostern(P.Postern):
    """postern with `[metrics] listen`, scraped every `interval` seconds while it runs."""

    def __init__(self, binary: str, workdir: Path, pki: P.Pki, backend: dict[str, int],
                 ports: dict[tuple[str, str], int], metrics_port: int, interval: float,
                 scraper_cpus: set[int], name: str = NAME) -> None:
        super().__init__(binary, workdir, pki, backend, ports, name=name)
        self.note = (f"postern with `[metrics] listen`, /metrics fetched every {interval:g} s "
                     "while it runs")
        self.metrics_port = metrics_port
        self.interval = interval
        self.scraper_cpus = scraper_cpus
        self.scraper: Scraper | None = None
        self.done = {"scrapes": 0, "scrape_errors": 0, "scrape_bytes": 0, "scrape_seconds": 0.0}
        self.last_error = ""

    def config_text(self, workers: int, starttls: bool) -> str:
        return (super().config_text(workers, starttls) +
                f'\n[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n')

    def wait_ports(self) -> set[int]:
        return super().wait_ports() | {self.metrics_port}

    def start(self, workers: int, cpus: str) -> None:
        super().start(workers, cpus)
        self.scraper = Scraper(self.metrics_port, self.interval, self.scraper_cpus)
        self.scraper.start()

    def stop(self) -> None:
        if self.scraper is not None:
            self.scraper.stop()
            for k, v in self.scraper.counts().items():
                self.done[k] += v
            self.last_error = self.scraper.last_error or self.last_error
            self.scraper = None
        super().stop()

    def counts(self) -> dict[str, float]:
        """Scrapes so far, over every start of this peer (monotonic: take differences)."""
        now = self.scraper.counts() if self.scraper is not None else {}
        return {k: v + now.get(k, 0) for k, v in self.done.items()}


def before(peer: P.Peer) -> dict[str, float] | None:
    """The metrics peer's scrape counts now (None for any other peer), for attach()."""
    return peer.counts() if isinstance(peer, MetricsPostern) else None


def attach(cell, peer: P.Peer, before_counts: dict[str, float] | None):
    """Records in `cell` the scrapes made since `before_counts`, and notes failed ones."""
    if not isinstance(peer, MetricsPostern) or before_counts is None:
        return cell
    now = peer.counts()
    scrapes = {k: now[k] - before_counts[k] for k in now}
    cell.raw = {**cell.raw, "scrapes": scrapes}
    if scrapes["scrape_errors"]:
        why = peer.scraper.last_error if peer.scraper is not None else peer.last_error
        failed = (f"{scrapes['scrape_errors']:.0f} of "
                  f"{scrapes['scrapes'] + scrapes['scrape_errors']:.0f} scrapes failed ({why})")
        cell.note = f"{cell.note}; {failed}" if cell.note else failed
    return cell


def _scrapes(cell) -> dict[str, float]:
    """A cell's scrapes, summed over the rounds merged into it."""
    total: dict[str, float] = {}
    for run in cell.raw.get("runs", [cell.raw]):
        for k, v in (run or {}).get("scrapes", {}).items():
            total[k] = total.get(k, 0) + v
    return total


# --------------------------------------------------------------------------------------------
# On versus off: the table section and the JSON


def _spread(values: list[float]) -> float | None:
    """(max - min) / min over the rounds: how far one proxy's own figure moved between rounds."""
    values = [v for v in values if v > 0]
    if len(values) < 2:
        return None
    return (max(values) - min(values)) / min(values)


def _round_values(cell, key: str) -> list[float | None]:
    return [None if v is None else v.get(key) for v in cell.raw.get("run_values", [])]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def compare(bench: Bench, scs: list[Scenario]) -> list[dict]:
    """One entry per scenario, worker count and figure where postern and postern+metrics both
    gave a figure: off and on (each the mean over its processes: with the twins, two each),
    on/off, the per-round ratios, how far the twins of each side differ, and the noise."""
    import table  # noqa: PLC0415 (here: table imports this module at its top)

    def ok_cells(workers: int, sc, names: tuple[str, ...]) -> list:
        cells = [bench.cells.get((sc.key, workers, n)) for n in names]
        return [c for c in cells if c is not None and c.status == "ok"]

    out = []
    for workers in (1, 2):
        for sc in scs:
            offs = ok_cells(workers, sc, ("postern", TWIN))
            ons = ok_cells(workers, sc, (NAME, NAME_TWIN))
            if not offs or not ons or bench.cells.get((sc.key, workers, "postern")) is not offs[0]:
                continue
            for key, figure, higher in table.METRICS[sc.kind]:
                off_values = [c.values.get(key, 0.0) for c in offs]
                on_values = [c.values.get(key, 0.0) for c in ons]
                if min(off_values) <= 0 or min(on_values) <= 0:
                    continue
                a, b = _mean(off_values), _mean(on_values)
                ratio = b / a
                # Per round: the same mean over each side's processes, in that round alone.
                rounds = list(zip(*[_round_values(c, key) for c in offs + ons]))
                pairs = [_mean(r[len(offs):]) / _mean(r[:len(offs)]) for r in rounds
                         if all(v and v > 0 for v in r)]
                spreads = [s for c in offs + ons
                           if (s := _spread([v for v in _round_values(c, key) if v])) is not None]
                # Two processes of one side: how far instances differ in this run.
                twins = [max(v) / min(v) - 1 for v in (off_values, on_values) if len(v) > 1]
                noise = max([*spreads, *twins, MIN_NOISE]) if spreads or twins else None
                within = None
                if noise is not None:
                    within = abs(ratio - 1) <= noise or (len(pairs) > 1 and
                                                         min(pairs) <= 1 <= max(pairs))
                out.append({"scenario": sc.key, "title": sc.title, "workers": workers,
                            "figure": key, "label": figure, "higher_is_better": higher,
                            "off": a, "on": b, "ratio": ratio, "off_processes": off_values,
                            "on_processes": on_values, "instance_spread": twins,
                            "round_ratios": pairs, "noise": noise, "within_noise": within,
                            "scrapes": _scrapes(ons[0])})
    return out


def render(bench: Bench, scs: list[Scenario], fmt) -> list[str]:
    rows = compare(bench, scs)
    if not rows:
        return [f"No figures: `{NAME}` or `postern` did not run (see `--peers`)."]
    lines = [
        f"postern and `{NAME}` (the same binary with `[metrics] listen`, /metrics fetched every "
        f"{_interval(bench):g} s by a thread of the driver) take the load interleaved in the "
        "same generator runs as every proxy above. **on / off** is postern+metrics' figure "
        "divided by postern's. Each side runs as two processes (`postern` and `postern-twin`, "
        "`postern+metrics` and `postern+metrics-twin`): *off* and *on* are the means of each "
        "pair, *twins* how far the two processes of each side differ (off, on), *per round* "
        "the ratio in each round alone. *Noise* is the largest of the twins' differences and "
        "of how far any one process's figure moved between the rounds ((max − min) / min), at "
        f"least {100 * MIN_NOISE:.0f} %; a "
        "ratio counts as **within noise** when it is no further from 1 than that, or when the "
        "per-round ratios lie on both sides of 1. "
        "With one round (`--quick`, idle rows) there is no spread to judge by (—).",
        "",
        "| scenario | workers | figure | better | off | on | on / off "
        "| per round | twins | noise | within noise | scrapes (errors) |",
        "|---|:-:|---|:-:|---:|---:|---:|---|---:|---:|:-:|---:|",
    ]
    last = None
    for r in rows:
        first = (r["scenario"], r["workers"]) != last
        last = (r["scenario"], r["workers"])
        s = r["scrapes"]
        scraped = f"{s.get('scrapes', 0):.0f} ({s.get('scrape_errors', 0):.0f})" \
            if first and s else ""
        per_round = ", ".join(f"{x:.2f}" for x in r["round_ratios"]) \
            if len(r["round_ratios"]) > 1 else "—"
        noise = f"{100 * r['noise']:.0f} %" if r["noise"] is not None else "—"
        twin = ", ".join(f"{100 * x:.0f} %" for x in r["instance_spread"]) or "—"
        within = {True: "yes", False: "**no**", None: "—"}[r["within_noise"]]
        lines.append(f"| {r['title'] if first else ''} | {r['workers'] if first else ''} "
                     f"| {r['label']} | {'↑' if r['higher_is_better'] else '↓'} "
                     f"| {fmt(r['off'])} | {fmt(r['on'])} | {r['ratio']:.2f} | {per_round} "
                     f"| {twin} | {noise} | {within} | {scraped} |")
    return lines


def _interval(bench: Bench) -> float:
    peer = next((p for p in bench.peers if isinstance(p, MetricsPostern)), None)
    return peer.interval if peer is not None else bench.scale.scrape_interval


def raw(bench: Bench, scs: list[Scenario]) -> dict:
    peer = next((p for p in bench.peers if isinstance(p, MetricsPostern)), None)
    return {"interval_seconds": _interval(bench),
            "scrapes_total": peer.counts() if peer is not None else {},
            "last_error": peer.last_error if peer is not None else "",
            "figures": compare(bench, scs)}


def failures(bench: Bench) -> list[str]:
    """The run fails if the metrics peer ran but its endpoint never answered."""
    peer = next((p for p in bench.peers if isinstance(p, MetricsPostern)), None)
    if peer is None or not any(k[2] == NAME and c.status == "ok" for k, c in bench.cells.items()):
        return []
    if peer.counts()["scrapes"] == 0:
        return [f"{NAME}: no scrape of /metrics answered ({peer.last_error or 'none made'})"]
    return []
