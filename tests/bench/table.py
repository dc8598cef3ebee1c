"""Renders the benchmark's results as markdown (tests/bench/results/latest.md) and as raw JSON."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import floors
import machine
import scrape

if TYPE_CHECKING:
    from bench import Bench
    from scenario_set import Scenario

PEER_TITLES = {"postern": "postern", "haproxy": "HAProxy", "stunnel": "stunnel",
               "nginx": "nginx mail", "baseline": "postern (baseline)",
               scrape.NAME: "postern + metrics", scrape.TWIN: "postern (twin)",
               scrape.NAME_TWIN: "postern + metrics (twin)"}
# postern's own variants: never "the best peer"
OWN = ("postern", "baseline", scrape.NAME, scrape.TWIN, scrape.NAME_TWIN)

# kind -> (value key, figure, higher is better)
METRICS = {
    "handshake": [("rate", "conn/s", True), ("cpu_us", "proxy CPU µs per conn", False)],
    "throughput": [("mb_s", "MB/s", True), ("cpu_us_mb", "proxy CPU µs per MB", False)],
    "latency": [("p50", "µs added, p50", False), ("p99", "µs added, p99", False),
                ("p999", "µs added, p99.9", False),
                ("cpu_us_rt", "proxy CPU µs per round trip", False)],
    "idle": [("rss_kib", "KiB RSS per session", False), ("cpu_pct", "% of a core while idle",
                                                         False)],
}
SPEED_KEYS = ("ecdsa_sign", "rsa_sign", "x25519", "aes_mb_s")


def fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def missing_speed(bench: Bench) -> list[str]:
    return [k for k in SPEED_KEYS if k not in bench.speed]


def ratio(values: dict[str, float], key: str, higher: bool) -> str:
    if "postern" not in values:
        return "—"
    peers = [v for name, v in values.items() if name not in OWN]
    if not peers:
        return "—"
    best = max(peers) if higher else min(peers)
    if best == 0:
        return "—"
    r = values["postern"] / best
    return f"**{r:.2f}**" if (r < 0.9 if higher else r > 1.1) else f"{r:.2f}"


def phase_table(bench: Bench, scs: list[Scenario], workers: int, notes: list[str]) -> list[str]:
    names = [p.name for p in bench.peers]
    head = "| scenario | figure | better | " + " | ".join(PEER_TITLES[n] for n in names) + \
           " | postern / best peer |"
    lines = [head, "|---|---|:-:|" + "---:|" * (len(names) + 1)]
    for sc in scs:
        if workers not in sc.workers and not (sc.kind == "idle" and workers == 1):
            continue
        if sc.kind == "idle" and workers != 1:
            continue
        cells = {n: bench.cells.get((sc.key, workers, n)) for n in names}
        for i, (key, figure, higher) in enumerate(METRICS[sc.kind]):
            row = [sc.title if i == 0 else "", figure, "↑" if higher else "↓"]
            values: dict[str, float] = {}
            for n in names:
                c = cells[n]
                if c is None:
                    row.append("")
                elif c.status == "ok":
                    v = c.values.get(key, 0.0)
                    values[n] = v
                    text = fmt(v)
                    if i == 0 and c.note:
                        notes.append(f"{sc.title}, {PEER_TITLES[n]}: {c.note}")
                        text += f" [{len(notes)}]"
                    row.append(text)
                elif c.status == "n/a":
                    row.append("—")
                elif c.status == "skipped":
                    row.append("not yet" if n == "postern" else "skipped")
                else:
                    if i == 0:
                        notes.append(f"{sc.title}, {PEER_TITLES[n]}: failed: {c.note}")
                        row.append(f"failed [{len(notes)}]")
                    else:
                        row.append("failed")
            row.append(ratio(values, key, higher))
            lines.append("| " + " | ".join(row) + " |")
    return lines


def limits(bench: Bench) -> list[str]:
    s = bench.speed
    speed = not missing_speed(bench)
    floor = bench.floor.get("bytes_per_session", 0.0) / 1024  # KiB per connection
    if not speed and not floor:
        return ["`openssl speed` and `postern-bench-floor` gave no figures."]
    lines = ["| OpenSSL alone on core 0, no proxy | figure |", "|---|---:|"]
    if speed:
        lines += [
            f"| ECDSA P-256 sign (`openssl speed`) | {fmt(s['ecdsa_sign'])} /s |",
            f"| X25519 key agreement, derive (`openssl speed`) | {fmt(s['x25519'])} /s |",
            f"| RSA-2048 sign (`openssl speed`) | {fmt(s['rsa_sign'])} /s |",
            f"| AES-128-GCM, 16 KiB blocks (`openssl speed`) | {fmt(s['aes_mb_s'])} MB/s |",
        ]
    else:
        lines.append("| `openssl speed` | no figures |")
    if floor:
        lines.append(
            f"| heap per idle TLS 1.3 connection (OpenSSL alone, no proxy; "
            f"`postern-bench-floor`, {bench.floor['sessions']:,} connections) "
            f"| {fmt(floor)} KiB |")
    else:
        lines.append("| heap per idle TLS 1.3 connection (`postern-bench-floor`) | no figure |")
    lines += [
        "",
        "| ceiling on one core | figure | postern | postern / ceiling |",
        "|---|---:|---|---:|",
    ]

    def cell(key: str) -> dict[str, float] | None:
        c = bench.cells.get((key, 1, "postern"))
        return c.values if c is not None and c.status == "ok" else None

    handshakes = (("hs-imap-ecdsa", "ECDSA P-256", s["ecdsa_sign"]),
                  ("hs-imap-rsa", "RSA-2048", s["rsa_sign"])) if speed else ()
    for key, name, sign in handshakes:
        ceiling = 1.0 / (1.0 / sign + 1.0 / s["x25519"])
        v = cell(key)
        if v and v.get("cpu_us"):
            per_cpu = 1e6 / v["cpu_us"]
            lines.append(
                f"| full handshake, {name} sign + X25519: 1 / (1/sign + 1/derive) "
                f"| {fmt(ceiling)} /s | {fmt(v['rate'])} /s achieved; {fmt(per_cpu)} per "
                f"CPU-second | {100 * v['rate'] / ceiling:.1f} % achieved; "
                f"{100 * per_cpu / ceiling:.1f} % per CPU-second |")
        else:
            lines.append(f"| full handshake, {name} | {fmt(ceiling)} /s | no figure | — |")
    v1, v64 = cell("tp-imap-1"), cell("tp-imap-64")
    if speed and v1 and v64:
        per_cpu = 1e6 / v1["cpu_us_mb"] if v1.get("cpu_us_mb") else 0.0
        lines.append(
            f"| bulk encryption, AES-128-GCM | {fmt(s['aes_mb_s'])} MB/s | 1 session "
            f"{fmt(v1['mb_s'])} MB/s, 64 sessions {fmt(v64['mb_s'])} MB/s; {fmt(per_cpu)} MB "
            f"per CPU-second | {100 * v1['mb_s'] / s['aes_mb_s']:.1f} % (1 session); "
            f"{100 * per_cpu / s['aes_mb_s']:.1f} % per CPU-second |")
    if floor:
        idle = cell("idle-imap")
        if idle is not None and "rss_kib" in idle:
            lines.append(
                f"| idle memory per session; the floor: OpenSSL's heap for one idle TLS 1.3 "
                f"connection | {fmt(floor)} KiB | {fmt(idle['rss_kib'])} KiB RSS per idle IMAP "
                f"session (greeting read; client TLS plus backend connection) | "
                f"{idle['rss_kib'] / floor:.2f} × the floor |")
        else:
            lines.append(f"| idle memory per session; the floor: OpenSSL's heap for one idle "
                         f"TLS 1.3 connection | {fmt(floor)} KiB | no figure | — |")
    return lines


def render(bench: Bench, scs: list[Scenario], elapsed: float) -> str:
    m = machine.describe(bench)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (`scripts/bench --quick`: tiny counts, a smoke test; the figures mean nothing)" \
        if bench.quick else "full (`scripts/bench`)"
    load = " ".join(f"{x:.2f}" for x in bench.load_before)
    d = bench.direct
    out = [
        "# postern benchmark: latest results",
        "",
        f"Run: {when}, {mode}, {elapsed / 60:.1f} minutes; each figure except the idle ones "
        f"is the best of {bench.scale.rounds} run(s) made minutes apart, and each latency "
        f"figure the median of {bench.scale.latency_rounds} round(s), each measuring every "
        "proxy and the backend interleaved, round trip by round trip. **Figures vary between "
        "runs (10 % and more on a shared VM); compare the ratios, not the absolute numbers.** "
        "How to read this table: [tests/bench/README.md](../README.md).",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| kernel, OpenSSL | Linux {m['kernel']}, {m['openssl']} |",
        f"| load average before the run | {load} (other work on the machine skews figures) |",
        f"| postern | {m.get('postern', '?')}, binary built {m['postern_built']} "
        f"(tree at commit {m['commit']}) |",
        f"| HAProxy | {m.get('haproxy', '?')} |",
        f"| stunnel | {m.get('stunnel', '?')} |",
        f"| nginx | {m.get('nginx', '?')} |",
        "",
        "Set-up: every proxy serves the same ECDSA P-256 and RSA-2048 certificates for "
        "`mail.bench.test` (the client's signature algorithms pick one), forwards to the same "
        "plaintext backend fixture, and runs with 1 worker (pinned to core 0), then 2 (cores "
        "0-1). The load generator and the backend fixture share core 1 (2 cores in all), so "
        "in the 2-worker rows the proxy's second worker competes with them. TLS 1.3 only, "
        "X25519, TLS_AES_128_GCM_SHA256 (offered by the client, so every proxy negotiates the "
        "same). Proxy CPU is user + system time from /proc over the run, divided by the work "
        "done; memory is VmRSS from /proc, after minus before, divided by the sessions held.",
        "",
    ]
    if bench.directs:
        out += [
            f"Backend fixture directly (plaintext, no proxy), NOOP round trip, measured "
            f"interleaved with the proxies (median of {len(bench.directs)} round(s)): p50 "
            f"{fmt(d.get('p50_us', 0))} µs, p99 {fmt(d.get('p99_us', 0))} µs, p99.9 "
            f"{fmt(d.get('p999_us', 0))} µs. The latency rows show what each proxy adds to "
            "these.",
            "",
        ]
    notes: list[str] = []
    for workers in (1, 2):
        out += [f"## {workers} worker{'s' if workers > 1 else ''}", ""]
        out += phase_table(bench, scs, workers, notes)
        out.append("")
    out += ["## Metrics on vs off", ""]
    out += scrape.render(bench, scs, fmt)
    out += ["", "## The machine's limit: OpenSSL alone on this core", ""]
    out += limits(bench)
    out += ["", "## The floor: OpenSSL and the kernel per connection, no proxy", ""]
    out += floors.render(bench, scs, PEER_TITLES, fmt)
    out += ["", "## Notes", ""]
    out += [f"- {p.name}: {p.note}." for p in bench.peers]
    out += [f"- {n}" for n in bench.notes]
    out += [
        "- Handshake rates are capped by the load generator: its OpenSSL 3.0 client spends "
        "about 1 ms of CPU per full handshake (mostly decoding the server's certificate), on "
        "one core shared with the backend fixture. Compare the proxies by *proxy CPU µs per "
        "conn*, which the client's speed does not change.",
        "- nginx answers the greeting, CAPABILITY and STARTTLS itself and connects to the "
        "backend only after login; the others relay the backend's greeting, so their "
        "handshake rows include a backend connection and nginx's do not.",
        "- Ratios in bold: postern more than 10 % behind the best peer.",
    ]
    if notes:
        out += ["", "Footnotes:", ""]
        out += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(out) + "\n"


def raw(bench: Bench, scs: list[Scenario], elapsed: float) -> dict:
    return {
        "quick": bench.quick,
        "elapsed_seconds": elapsed,
        "machine": machine.describe(bench),
        "load_before": bench.load_before,
        "direct_latency": bench.direct,
        "openssl_speed": bench.speed,
        "tls_floor": bench.floor,
        "floor": floors.raw(bench, scs),
        "metrics_on_vs_off": scrape.raw(bench, scs),
        "notes": bench.notes,
        "cells": [{"scenario": k[0], "workers": k[1], "peer": k[2], "status": c.status,
                   "values": c.values, "note": c.note, "generator": c.raw}
                  for k, c in bench.cells.items()],
    }
