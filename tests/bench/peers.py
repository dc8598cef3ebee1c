"""The proxies under test: postern, HAProxy, stunnel and nginx's mail proxy.

Each gets the same certificates (ECDSA P-256 and RSA-2048 for mail.bench.test, chosen by the
client's signature algorithms), the same backend fixture, and one listener per protocol and TLS
mode it supports. Configs are written from scratch per run into a temporary folder; nothing here
touches the machine's own configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("imap", "pop3", "smtp")
SNI = "mail.bench.test"


@dataclass
class Pki:
    """Certificate and key files; 'chain' files hold the leaf only (see README: client cost)."""

    ecdsa_crt: Path
    ecdsa_key: Path
    rsa_crt: Path
    rsa_key: Path
    ecdsa_pem: Path  # certificate + key in one file (stunnel, haproxy)
    rsa_pem: Path


def make_pki(folder: Path) -> Pki:
    """A CA per key type and a leaf for mail.bench.test from each. Keys never leave `folder`."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    (folder / "leaf.ext").write_text(
        f"subjectAltName=DNS:{SNI}\nextendedKeyUsage=serverAuth\n")
    for kind, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        run("req", "-x509", *newkey, "-nodes", "-keyout", f"ca-{kind}.key",
            "-out", f"ca-{kind}.crt", "-days", "365", "-subj", f"/CN=postern bench {kind} CA")
        run("req", *newkey, "-nodes", "-keyout", f"{kind}.key", "-out", f"{kind}.csr",
            "-subj", f"/CN={SNI}")
        run("x509", "-req", "-in", f"{kind}.csr", "-CA", f"ca-{kind}.crt",
            "-CAkey", f"ca-{kind}.key", "-CAcreateserial", "-days", "365",
            "-extfile", "leaf.ext", "-out", f"{kind}.crt")
        pem = (folder / f"{kind}.crt").read_text() + (folder / f"{kind}.key").read_text()
        (folder / f"{kind}.pem").write_text(pem)
    for p in folder.iterdir():
        if p.suffix in (".key", ".pem"):
            p.chmod(0o600)
    return Pki(folder / "ecdsa.crt", folder / "ecdsa.key", folder / "rsa.crt",
               folder / "rsa.key", folder / "ecdsa.pem", folder / "rsa.pem")


# --------------------------------------------------------------------------------------------
# Processes


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (from /proc, so no probe connects)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "0A":
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (nginx's workers, for instance)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads, live or exited)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_kib(pids: list[int]) -> int:
    """Resident memory (VmRSS) of these processes, summed, in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process we started, then SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


# --------------------------------------------------------------------------------------------
# Peers


@dataclass
class Peer:
    """A proxy under test. Subclasses write its config and name its command line."""

    name: str
    binary: str
    workdir: Path
    pki: Pki
    backend: dict[str, int]  # protocol -> backend port
    ports: dict[tuple[str, str], int] = field(default_factory=dict)  # (protocol, tls) -> port
    proc: subprocess.Popen | None = None
    note: str = ""  # how it runs, for the table's notes

    modes: tuple[str, ...] = ("implicit",)

    def supports(self, protocol: str, tls: str) -> bool:
        return (protocol, tls) in self.ports

    def workers_supported(self, workers: int) -> tuple[bool, str]:
        return True, ""

    def version(self) -> str:
        return "?"

    def write_config(self, workers: int) -> list[str]:
        raise NotImplementedError

    def start(self, workers: int, cpus: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = self.write_config(workers)
        log = open(self.workdir / f"{self.name}.out", "ab")
        self.proc = subprocess.Popen(["taskset", "-c", cpus, *command], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.workdir, start_new_session=True)
        log.close()
        wanted = self.wait_ports()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.tail_log()}")
            if wanted <= listening_ports():
                time.sleep(0.1)  # nginx: workers start after the master binds
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not listen within 15 s: {self.tail_log()}")

    def wait_ports(self) -> set[int]:
        """Ports that listen once the proxy is ready."""
        return set(self.ports.values())

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        deadline = time.monotonic() + 5  # the next start binds the same ports
        while self.wait_ports() & listening_ports() and time.monotonic() < deadline:
            time.sleep(0.05)

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def tail_log(self) -> str:
        try:
            text = (self.workdir / f"{self.name}.out").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])


def _version_line(command: list[str], pick: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for line in (out.stdout + out.stderr).splitlines():
        if pick in line:
            return line.strip()
    return "?"


class Postern(Peer):
    def __init__(self, binary: str, workdir: Path, pki: Pki, backend: dict[str, int],
                 ports: dict[tuple[str, str], int], name: str = "postern") -> None:
        super().__init__(name, binary, workdir, pki, backend, ports,
                         note="one event loop per worker; log_level warn (no per-session line)")
        self.starttls_ports = {k: v for k, v in ports.items() if k[1] == "starttls"}
        self.starttls_enabled = True  # until the probe says otherwise

    def version(self) -> str:
        return _version_line([self.binary, "--version"], "postern").replace("postern ", "")

    def config_text(self, workers: int, starttls: bool) -> str:
        server = ['[server]', 'log_level = "warn"']
        if workers > 1:
            server.append(f"workers = {workers}")
        lines = server + [
            "", "[tls]", f'default_certificate = "{SNI}"', "",
            "[[certificate]]", f'cert = "{self.pki.ecdsa_crt}"', f'key = "{self.pki.ecdsa_key}"', "",
            "[[certificate]]", f'cert = "{self.pki.rsa_crt}"', f'key = "{self.pki.rsa_key}"', "",
        ]
        for protocol in PROTOCOLS:
            lines += ["[[backend]]", f'name = "{protocol}"',
                      f'address = "127.0.0.1:{self.backend[protocol]}"', ""]
        for (protocol, tls), port in sorted(self.ports.items()):
            if tls == "starttls" and not starttls:
                continue
            # every load client connects from 127.0.0.1: no per-client limits (as the peers)
            lines += ["[[listener]]", f'listen = "127.0.0.1:{port}"', f'protocol = "{protocol}"',
                      f'tls = "{tls}"', f'backend = "{protocol}"', "max_sessions_per_client = 0",
                      'max_new_per_client = "off"', ""]
        return "\n".join(lines)

    def check(self, text: str) -> tuple[bool, str]:
        path = self.workdir / "check.toml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out = subprocess.run([self.binary, "check", "--config", str(path)],
                             capture_output=True, text=True, timeout=30)
        first_error = next((l for l in (out.stderr + out.stdout).splitlines()
                            if "error" in l.lower() or "workers" in l), "")
        return out.returncode == 0, first_error.replace(str(path), path.name).strip()

    def workers_supported(self, workers: int) -> tuple[bool, str]:
        if workers == 1:
            return True, ""
        ok, why = self.check(self.config_text(workers, self.starttls_enabled))
        return ok, ("`postern check` rejects `[server] workers`" + (f": {why}" if why else ""))

    def disable_starttls(self) -> None:
        self.starttls_enabled = False
        for key in self.starttls_ports:
            self.ports.pop(key, None)

    def write_config(self, workers: int) -> list[str]:
        path = self.workdir / "postern.toml"
        path.write_text(self.config_text(workers, self.starttls_enabled))
        return [self.binary, "run", "--config", str(path)]


class Haproxy(Peer):
    def __init__(self, workdir: Path, pki: Pki, backend: dict[str, int],
                 ports: dict[tuple[str, str], int]) -> None:
        implicit = {k: v for k, v in ports.items() if k[1] == "implicit"}
        super().__init__("haproxy", "haproxy", workdir, pki, backend, implicit,
                         note="TCP mode, crt-list; nbthread = workers; no STARTTLS (by design)")

    def version(self) -> str:
        line = _version_line(["haproxy", "-v"], "HAProxy version")
        return line.split()[2] if len(line.split()) > 2 else "?"

    def write_config(self, workers: int) -> list[str]:
        crt_list = self.workdir / "crt-list.txt"
        crt_list.write_text(f"{self.pki.ecdsa_pem} {SNI}\n{self.pki.rsa_pem} {SNI}\n")
        lines = ["global", "    maxconn 9000", f"    nbthread {workers}",
                 "", "defaults", "    mode tcp", "    maxconn 9000", "    timeout connect 10s",
                 "    timeout client 30m", "    timeout server 30m", ""]
        for (protocol, _tls), port in sorted(self.ports.items()):
            lines += [f"frontend {protocol}s",
                      f"    bind 127.0.0.1:{port} ssl crt-list {crt_list}",
                      f"    default_backend {protocol}", "",
                      f"backend {protocol}",
                      f"    server b 127.0.0.1:{self.backend[protocol]}", ""]
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text("\n".join(lines))
        return ["haproxy", "-db", "-f", str(cfg)]


class Stunnel(Peer):
    def __init__(self, workdir: Path, pki: Pki, backend: dict[str, int],
                 ports: dict[tuple[str, str], int]) -> None:
        super().__init__("stunnel", "stunnel", workdir, pki, backend, dict(ports),
                         note="a thread per connection (no worker setting); debug = warning")

    def version(self) -> str:
        line = _version_line(["stunnel", "-version"], "stunnel ")
        return line.split()[1] if len(line.split()) > 1 else "?"

    def write_config(self, workers: int) -> list[str]:
        # `config = Certificate:` adds the RSA certificate next to the ECDSA one (SSL_CONF_cmd);
        # OpenSSL then serves whichever the client's signature algorithms accept.
        lines = ["foreground = yes", f"pid = {self.workdir / 'stunnel.pid'}",
                 f"output = {self.workdir / 'stunnel.log'}", "debug = warning", "syslog = no", ""]
        for (protocol, tls), port in sorted(self.ports.items()):
            lines += [f"[{protocol}-{tls}]", f"accept = 127.0.0.1:{port}",
                      f"connect = 127.0.0.1:{self.backend[protocol]}",
                      f"cert = {self.pki.ecdsa_pem}",
                      f"config = Certificate:{self.pki.rsa_crt}",
                      f"config = PrivateKey:{self.pki.rsa_key}"]
            if tls == "starttls":
                lines.append(f"protocol = {protocol}")
            lines.append("")
        cfg = self.workdir / "stunnel.conf"
        cfg.write_text("\n".join(lines))
        return ["stunnel", str(cfg)]


class Nginx(Peer):
    def __init__(self, workdir: Path, pki: Pki, backend: dict[str, int],
                 ports: dict[tuple[str, str], int], auth_port: int) -> None:
        super().__init__("nginx", "nginx", workdir, pki, backend, dict(ports),
                         note="mail module; greets and authenticates itself, then connects the "
                              "backend (auth_http served by the same nginx); "
                              "worker_processes = workers")
        self.auth_port = auth_port

    def version(self) -> str:
        return _version_line(["nginx", "-v"], "nginx version").replace("nginx version: ", "")

    def write_config(self, workers: int) -> list[str]:
        d = self.workdir
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        servers = []
        for (protocol, tls), port in sorted(self.ports.items()):
            if tls == "implicit":
                servers.append(f"    server {{ listen 127.0.0.1:{port} ssl; protocol {protocol}; }}")
            else:
                servers.append(f"    server {{ listen 127.0.0.1:{port}; protocol {protocol}; "
                               f"starttls only; }}")
        conf = f"""load_module /usr/lib/nginx/modules/ngx_mail_module.so;
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 20000; }}

http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    # nginx sends Auth-Protocol: imap|pop3|smtp; every login is accepted and routed to the
    # backend fixture for that protocol.
    map $http_auth_protocol $mail_backend_port {{
        imap {self.backend['imap']};
        pop3 {self.backend['pop3']};
        smtp {self.backend['smtp']};
        default {self.backend['imap']};
    }}
    server {{
        listen 127.0.0.1:{self.auth_port};
        location = /auth {{
            add_header Auth-Status OK always;
            add_header Auth-Server 127.0.0.1 always;
            add_header Auth-Port $mail_backend_port always;
            return 204;
        }}
    }}
}}

mail {{
    server_name {SNI};
    auth_http 127.0.0.1:{self.auth_port}/auth;
    proxy_pass_error_message on;
    ssl_certificate     {self.pki.ecdsa_crt};
    ssl_certificate_key {self.pki.ecdsa_key};
    ssl_certificate     {self.pki.rsa_crt};
    ssl_certificate_key {self.pki.rsa_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    imap_capabilities IMAP4rev1 IDLE LITERAL+ SASL-IR;
    pop3_capabilities TOP USER UIDL;
    smtp_capabilities PIPELINING 8BITMIME "SIZE 10240000";
    smtp_auth none;
    xclient off;
{chr(10).join(servers)}
}}
"""
        cfg = d / "nginx.conf"
        cfg.write_text(conf)
        return ["nginx", "-p", str(d), "-c", str(cfg)]

    def wait_ports(self) -> set[int]:
        return set(self.ports.values()) | {self.auth_port}
