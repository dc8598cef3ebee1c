"""The machine the benchmark ran on: what it is (CPU, kernel, OpenSSL, the proxies' versions,
postern's commit and build time) and how fast OpenSSL alone runs on the proxies' core
(`openssl speed`): the limit the handshake and throughput rows are read against."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench import Bench


def describe(bench: Bench) -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {p.name: p.version() for p in bench.peers}
    openssl = subprocess.run(["openssl", "version"], capture_output=True,
                             text=True).stdout.split(" (")[0].strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    built = datetime.fromtimestamp(Path(bench.args.postern).stat().st_mtime, timezone.utc)
    return {"cores": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
            "openssl": openssl, "commit": commit or "?",
            "postern_built": built.strftime("%Y-%m-%d %H:%M UTC"), **versions}


def openssl_speed(bench: Bench) -> None:
    s = str(bench.scale.speed_seconds)
    out = subprocess.run(["taskset", "-c", "0", "openssl", "speed", "-seconds", s,
                          "ecdsap256", "rsa2048", "ecdhx25519"],
                         capture_output=True, text=True, timeout=300).stdout
    if m := re.search(r"ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out):
        bench.speed["ecdsa_sign"] = float(m.group(1))
    if m := re.search(r"^rsa 2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out, re.M):
        bench.speed["rsa_sign"] = float(m.group(1))
    if m := re.search(r"ecdh \(X25519\)\s+[\d.]+s\s+([\d.]+)", out):
        bench.speed["x25519"] = float(m.group(1))
    out = subprocess.run(["taskset", "-c", "0", "openssl", "speed", "-seconds", s,
                          "-bytes", "16384", "-evp", "aes-128-gcm"],
                         capture_output=True, text=True, timeout=300).stdout
    if m := re.search(r"^AES-128-GCM\s+([\d.]+)k", out, re.M):
        bench.speed["aes_mb_s"] = float(m.group(1)) / 1000.0  # openssl's k = 1000 bytes
