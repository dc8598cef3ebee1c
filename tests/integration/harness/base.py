"""Shared ground of the harness: paths and settings from the environment, bounded waiting,
ports asked from the OS, server templates, CLI runs, test messages, and the Daemon / Service
bases every fixture builds on."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Optional

HERE = Path(__file__).resolve().parents[1]  # tests/integration
REPO = HERE.parents[1]
SERVERS = HERE / "servers"
POSTERN_BIN = Path(os.environ.get("POSTERN_BIN") or REPO / "build" / "postern")
KEEP_TMP = os.environ.get("POSTERN_KEEP_TMP") not in (None, "", "0")
# The binary is an ASan+UBSan build (ctest's asan preset): its memory and speed mean nothing,
# so tests skip those measurements (the dev pass makes them); everything else is asserted.
SANITIZED = os.environ.get("POSTERN_SANITIZED") not in (None, "", "0")
CACHE = Path(os.environ.get("POSTERN_TEST_CACHE") or "/var/cache/postern-integration")
LOCALHOST = "127.0.0.1"
USER, PASSWORD = "test", "secret"


# ---------------------------------------------------------------------------------------------
# Waiting, ports, templates


class WaitTimeout(AssertionError):
    pass


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.05, proc: Optional[subprocess.Popen] = None):
    """Polls predicate until it returns something truthy (returned) or timeout seconds pass.

    If proc is given and exits meanwhile, fails at once instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise WaitTimeout(f"{what}: process {proc.args[0]} exited with {proc.returncode}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# Every port this process has handed out: the kernel may offer a port again once the probing
# socket is closed, and two fixtures (or two listeners of one config) must never share one.
_HANDED_OUT: set[int] = set()


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """Ports the OS considers free right now (all bound at once, so they are distinct), none
    handed out before by this process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    ports: list[int] = []
    try:
        for _ in range(count + 1000):
            if len(ports) == count:
                break
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)  # held until the end, so the kernel offers a different one next
            port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                ports.append(port)
        if len(ports) < count:
            raise RuntimeError(f"no {count} fresh free port(s) on {host}")
        _HANDED_OUT.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


def free_port(host: str = LOCALHOST) -> int:
    return free_ports(1, host)[0]


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state in this network namespace (from /proc/net/tcp and tcp6)."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def wait_listening(ports: Iterable[int], timeout: float = 10.0,
                   proc: Optional[subprocess.Popen] = None, what: str = "") -> None:
    want = set(ports)
    wait_until(lambda: want <= listening_ports(), timeout,
               f"{what or 'server'} listening on {sorted(want)}", proc=proc)


def wait_not_listening(ports: Iterable[int], timeout: float = 10.0, what: str = "") -> None:
    want = set(ports)
    wait_until(lambda: not (want & listening_ports()), timeout,
               f"{what or 'server'} to stop listening on {sorted(want)}")


def render(template: str, dest: Path, mode: int = 0o644, **values) -> Path:
    """Fills servers/<template> placeholders @KEY@ from values; every placeholder must be known."""
    text = (SERVERS / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = sorted(set(re.findall(r"@[A-Z][A-Z0-9_]*@", text)))
    if left:
        raise ValueError(f"{template}: placeholders without a value: {left}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    dest.chmod(mode)
    return dest


def run(argv: list[str], *, timeout: float = 30, input: Optional[bytes] = None,
        check: bool = False, env: Optional[dict] = None, cwd=None) -> subprocess.CompletedProcess:
    """Runs a CLI client/tool; output is bytes-decoded text (errors replaced)."""
    p = subprocess.run([str(a) for a in argv], input=input if input is not None else b"",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=env, cwd=cwd)
    out = subprocess.CompletedProcess(p.args, p.returncode,
                                      p.stdout.decode(errors="replace"),
                                      p.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(out.args)} exited {out.returncode}\n"
                             f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}")
    return out


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def message(subject: str, to: str = "test@a.test", sender: str = "sender@c.test",
            body: str = "hello from postern's integration tests") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@c.test>\r\n\r\n{body}\r\n").encode()


# ---------------------------------------------------------------------------------------------
# Processes


def rss_kib(pid: int) -> int:
    """A running process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a running process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Daemon:
    """A child process in its own process group, output to a log file, stopped by pid.

    nofile: its open-files limit (soft and hard), set in the child before exec, so a limit the
    process raises itself at start can go no higher."""

    def __init__(self, name: str, argv: list, log: Path, env: Optional[dict] = None,
                 cwd: Optional[Path] = None, nofile: Optional[int] = None):
        self.name, self.argv, self.log, self.env, self.cwd = name, [str(a) for a in argv], log, env, cwd
        self.nofile = nofile
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Daemon":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        limit = self.nofile

        def preexec() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                         start_new_session=True,
                                         preexec_fn=preexec if limit is not None else None)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        """Exit code, or None if still running after timeout."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> Optional[int]:
        """SIGTERM (then SIGKILL to its process group after timeout); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait(timeout) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # children left in the group (e.g. Dovecot workers) go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


class Service:
    """Base for fixtures: a folder, a list of log files, start()/stop()."""

    name = "service"

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs: list[Path] = []

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def log_text(self) -> str:
        parts = []
        for log in self.logs:
            with contextlib.suppress(FileNotFoundError):
                parts.append(log.read_text(errors="replace"))
        return "".join(parts)

    def log_size(self, log: Optional[Path] = None) -> int:
        """Bytes in a log file (default: the first of self.logs), to read only what follows."""
        with contextlib.suppress(FileNotFoundError):
            return (log or self.logs[0]).stat().st_size
        return 0

    def wait_log(self, pattern: str, timeout: float = 10.0, since: int = 0,
                 log: Optional[Path] = None) -> re.Match:
        """First match of the regex (multiline) in a log file (default: the first of self.logs)
        from byte offset since, polled until timeout."""
        rx = re.compile(pattern, re.M)
        path = log or self.logs[0]

        def look():
            with contextlib.suppress(FileNotFoundError):
                with open(path, "rb") as f:
                    f.seek(since)
                    return rx.search(f.read().decode(errors="replace"))
            return None
        return wait_until(look, timeout, f"{self.name} log line matching {pattern!r} in {path}",
                          interval=0.05)
