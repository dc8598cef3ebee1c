"""What the benchmark runs: the scenarios, how long and how much each runs (a full run or
--quick), and which cores the proxies and the load generator are pinned to."""

from __future__ import annotations

from dataclasses import dataclass

PROXY_CPUS = {1: "0", 2: "0,1"}
CLIENT_CPUS = "1"


@dataclass(frozen=True)
class Scale:
    """How long and how much each scenario runs."""

    handshake_seconds: float
    handshake_concurrency: int
    throughput_seconds: float
    # Handshakes and throughput load the proxies in turn, this long at a time, within one
    # generator run; the seconds above are each proxy's total.
    slice: float
    chunk: int
    latency_count: int
    latency_seconds: float
    idle_sessions: int
    idle_settle: float
    idle_hold: float
    speed_seconds: int
    floor_sessions: int  # connections postern-bench-floor establishes and holds
    floor_handshakes: int  # postern-bench-floor --handshakes: per key type, full and resumed
    rounds: int  # each handshake and throughput figure is the best of this many runs
    # The latency rows instead take the median of this many rounds. Each round is one run
    # against every proxy and the backend directly at once, round trip by round trip in a
    # shuffled order (postern-bench latency --also/--direct): measured one after another, the
    # tail of one proxy's 3 s run moved threefold on a shared VM and ranked the proxies by luck.
    latency_rounds: int
    scrape_interval: float  # postern+metrics: seconds between two GETs of /metrics (scrape.py)


FULL = Scale(handshake_seconds=3, handshake_concurrency=16, throughput_seconds=3,
             slice=0.5,
             chunk=1 << 20, latency_count=20_000, latency_seconds=12, idle_sessions=8000,
             idle_settle=1.0, idle_hold=10, speed_seconds=2, floor_sessions=2000,
             floor_handshakes=1000, rounds=2,
             latency_rounds=5, scrape_interval=1.0)
QUICK = Scale(handshake_seconds=0.4, handshake_concurrency=4, throughput_seconds=0.3,
              slice=0.1,
              chunk=64 << 10, latency_count=200, latency_seconds=4, idle_sessions=40,
              idle_settle=0.1, idle_hold=0.5, speed_seconds=1, floor_sessions=200,
              floor_handshakes=20, rounds=1,
              latency_rounds=1, scrape_interval=0.1)


@dataclass(frozen=True)
class Scenario:
    key: str
    kind: str  # handshake | throughput | latency | idle
    protocol: str
    tls: str
    title: str
    args: tuple[str, ...] = ()
    workers: tuple[int, ...] = (1,)


def scenarios(scale: Scale) -> list[Scenario]:
    hs = ("--concurrency", str(scale.handshake_concurrency),
          "--duration", str(scale.handshake_seconds), "--slice", str(scale.slice))
    tp = ("--chunk", str(scale.chunk), "--duration", str(scale.throughput_seconds),
          "--slice", str(scale.slice))
    lat = ("--count", str(scale.latency_count), "--duration", str(scale.latency_seconds))
    return [
        Scenario("hs-imap-ecdsa", "handshake", "imap", "implicit",
                 "handshake IMAP, ECDSA P-256, full", ("--key", "ecdsa", *hs), (1, 2)),
        Scenario("hs-imap-rsa", "handshake", "imap", "implicit",
                 "handshake IMAP, RSA-2048, full", ("--key", "rsa", *hs)),
        Scenario("hs-imap-resumed", "handshake", "imap", "implicit",
                 "handshake IMAP, resumed (ticket)", ("--key", "ecdsa", "--resume", *hs)),
        Scenario("hs-pop3-ecdsa", "handshake", "pop3", "implicit",
                 "handshake POP3, ECDSA, full", ("--key", "ecdsa", *hs)),
        Scenario("hs-smtp-ecdsa", "handshake", "smtp", "implicit",
                 "handshake SMTP, ECDSA, full", ("--key", "ecdsa", *hs)),
        Scenario("hs-imap-starttls", "handshake", "imap", "starttls",
                 "handshake IMAP STARTTLS, ECDSA, full", ("--key", "ecdsa", *hs)),
        Scenario("hs-imap-starttls-resumed", "handshake", "imap", "starttls",
                 "handshake IMAP STARTTLS, resumed", ("--key", "ecdsa", "--resume", *hs)),
        Scenario("hs-pop3-starttls", "handshake", "pop3", "starttls",
                 "handshake POP3 STLS, ECDSA, full", ("--key", "ecdsa", *hs)),
        Scenario("hs-smtp-starttls", "handshake", "smtp", "starttls",
                 "handshake SMTP STARTTLS, ECDSA, full", ("--key", "ecdsa", *hs)),
        Scenario("tp-imap-1", "throughput", "imap", "implicit",
                 "throughput IMAP, 1 session", ("--sessions", "1", *tp)),
        Scenario("tp-imap-64", "throughput", "imap", "implicit",
                 "throughput IMAP, 64 sessions", ("--sessions", "64", *tp), (1, 2)),
        Scenario("tp-imap-starttls-1", "throughput", "imap", "starttls",
                 "throughput IMAP STARTTLS, 1 session", ("--sessions", "1", *tp)),
        Scenario("tp-imap-starttls-64", "throughput", "imap", "starttls",
                 "throughput IMAP STARTTLS, 64 sessions", ("--sessions", "64", *tp)),
        Scenario("lat-imap", "latency", "imap", "implicit",
                 "latency IMAP NOOP, added over direct", lat),
        Scenario("lat-imap-starttls", "latency", "imap", "starttls",
                 "latency IMAP STARTTLS NOOP, added over direct", lat),
        Scenario("idle-imap", "idle", "imap", "implicit",
                 f"idle IMAP, {scale.idle_sessions} sessions, greeting read", ()),
        Scenario("idle-imap-login", "idle", "imap", "implicit",
                 f"idle IMAP, {scale.idle_sessions} sessions, logged in", ("--login",)),
    ]
