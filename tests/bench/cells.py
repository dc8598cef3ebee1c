"""A cell of the table (one scenario against one proxy), and the small helpers that turn the
load generator's output into figures and hand out ports."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field


@dataclass
class Cell:
    """One scenario against one proxy."""

    status: str  # ok | failed | n/a (proxy lacks the feature) | skipped (postern: not yet)
    values: dict[str, float] = field(default_factory=dict)
    note: str = ""
    raw: dict = field(default_factory=dict)


class GeneratorError(Exception):
    pass


# Every port handed out so far: every proxy runs at once, so no two may get the same one, and
# the kernel may offer a port again once its probing socket is closed.
_HANDED_OUT: set[int] = set()


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < n and len(socks) < n + 1000:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)  # held, so the kernel offers a different port next
            if s.getsockname()[1] not in _HANDED_OUT:
                ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    if len(ports) < n:
        raise RuntimeError(f"no {n} fresh free ports on 127.0.0.1")
    _HANDED_OUT.update(ports)
    return ports


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise GeneratorError(f"no result line in generator output: {text.strip()[-300:]!r}")


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
