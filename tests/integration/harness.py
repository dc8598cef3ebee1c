"""Integration-test harness for postern: real backends, real clients, the real binary.

Everything a test needs to run postern hermetically on loopback:

* ``IntegrationCase`` -- unittest base class. One temp dir per test class (``cls.tmp``; a test's
  own subfolder: ``self.workdir_for_test()``). Services registered with ``cls.own(s).start()`` /
  ``self.own_for_test(s).start()`` are stopped in the (class) cleanups even when a test or
  ``setUpClass`` fails, and their logs are dumped to stderr whenever a test fails. Override
  ``start_fixtures(cls)`` (a classmethod) to start the class's servers.
* ``Pki`` -- a CA and ECDSA P-256 certificates made with the ``openssl`` CLI in the temp dir
  (private keys never leave it): ``default`` (mail.default), ``a`` (mail.a.test), ``b``
  (mail.b.test, file holds leaf + CA chain) and ``c`` (wildcard ``*.c.test``). ``Pki.identify()``
  names the certificate a server sent, by SHA-256 fingerprint.
* ``Dovecot``, ``Postfix``, ``Courier`` -- backends started from ``servers/*.in`` templates on
  ports asked from the OS. ``Dovecot(..., starttls=True)`` advertises STARTTLS/STLS on its
  plaintext ports (and LOGINDISABLED when reached through a non-loopback-equal address).
  ``Postfix(..., pki=...)`` adds a second plaintext port that advertises STARTTLS.
* ``Postern`` -- writes a TOML config (certificates with paths relative to the config's folder),
  runs ``postern run --config``, waits until every listener listens, reads its stderr log
  (``session_end()`` parses the one-line session summary), and runs ``postern check``.
* Clients: ``tls_connect()``, ``ImapSni`` / ``Pop3Sni`` / ``SmtpSni`` (stdlib clients that
  connect to 127.0.0.1 while sending the given SNI), ``ImapStarttls`` / ``Pop3Starttls`` /
  ``SmtpStarttls`` (the same over STARTTLS / STLS), ``LineClient`` for raw protocol dialogues
  (``LineClient.starttls()`` upgrades one in place),
  ``run()`` for CLI clients (curl, swaks, openssl), ``sni_sent_by()`` to see which SNI a CLI
  client really puts in its ClientHello.
* ``RecordingRelay`` -- a TCP relay to put between postern and a backend: records, per
  connection, every byte postern sent the backend (and back).
* Waiting: ``wait_until()`` polls with a bounded timeout; ``wait_listening()`` reads
  /proc/net/tcp* (no probe connections, which backends would log as aborted sessions).

The postern binary is ``$POSTERN_BIN`` (default ``<repo>/build/postern``). Set
``POSTERN_KEEP_TMP=1`` to keep the temp dirs for inspection.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import fcntl
import hashlib
import imaplib
import os
import poplib
import re
import selectors
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path
from typing import Callable, Iterable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVERS = HERE / "servers"
POSTERN_BIN = Path(os.environ.get("POSTERN_BIN") or REPO / "build" / "postern")
KEEP_TMP = os.environ.get("POSTERN_KEEP_TMP") not in (None, "", "0")
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


class Daemon:
    """A child process in its own process group, output to a log file, stopped by pid."""

    def __init__(self, name: str, argv: list, log: Path, env: Optional[dict] = None,
                 cwd: Optional[Path] = None):
        self.name, self.argv, self.log, self.env, self.cwd = name, [str(a) for a in argv], log, env, cwd
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Daemon":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                         start_new_session=True)
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


# ---------------------------------------------------------------------------------------------
# PKI


class Pki:
    """Test CA + ECDSA P-256 server certificates, generated with the openssl CLI.

    CERTS: short name -> (subjectAltName DNS names, days valid), issued at construction; days
    differ per certificate so that each not-after date is distinct. add() issues more.
    """

    CERTS = {
        "default": (["mail.default"], 30),
        "a": (["mail.a.test"], 31),
        "b": (["mail.b.test"], 32),
        "c": (["*.c.test"], 33),
    }
    CHAIN = {"b"}  # these certificate files carry the CA after the leaf

    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.crt"
        self.certs: dict[str, tuple[list[str], int]] = {}
        self._fingerprints: dict[str, str] = {}
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", self.dir / "ca.key", "-out", self.ca, "-days", "60",
             "-subj", "/CN=postern integration test CA"], check=True)
        (self.dir / "ca.key").chmod(0o600)
        for name, (dns, days) in self.CERTS.items():
            self.add(name, dns, days, chain=name in self.CHAIN)

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def names(self, name: str) -> list[str]:
        return self.certs[name][0]

    def add(self, name: str, dns: list[str], days: int = 30, *, key: str = "ec",
            chain: bool = False) -> None:
        """Issues another server certificate from the CA. key: "ec" (P-256) or "rsa" (2048)."""
        d = self.dir
        csr, ext, leaf = d / f"{name}.csr", d / f"{name}.ext", d / f"{name}.leaf.crt"
        keyargs = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec"
                   else ["-newkey", "rsa:2048"])
        run(["openssl", "req", *keyargs, "-nodes", "-keyout", self.key(name), "-out", csr,
             "-subj", f"/CN={dns[0]}"], check=True)
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns) + "\n"
                       "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", d / "ca.key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", str(days), "-extfile", ext, "-out", leaf], check=True)
        text = leaf.read_text()
        if chain:
            text += self.ca.read_text()
        self.crt(name).write_text(text)
        self.key(name).chmod(0o600)
        self.certs[name] = (list(dns), days)

    def leaf_der(self, name: str) -> bytes:
        pem = self.crt(name).read_text()
        first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
        return ssl.PEM_cert_to_DER_cert(first + "\n")

    def fingerprint(self, name: str) -> str:
        if name not in self._fingerprints:
            self._fingerprints[name] = hashlib.sha256(self.leaf_der(name)).hexdigest()
        return self._fingerprints[name]

    def identify(self, der: Optional[bytes]) -> str:
        """Short name of the certificate whose leaf is der, or 'unknown' / 'none'."""
        if not der:
            return "none"
        fp = hashlib.sha256(der).hexdigest()
        for name in self.certs:
            if self.fingerprint(name) == fp:
                return name
        return "unknown"

    def identify_pem(self, pem: str) -> str:
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
        return self.identify(ssl.PEM_cert_to_DER_cert(m.group(0) + "\n") if m else None)

    def spki_pin(self, name: str) -> str:
        """curl --pinnedpubkey value (sha256//base64 of the SubjectPublicKeyInfo)."""
        pub = run(["openssl", "x509", "-in", self.crt(name), "-noout", "-pubkey"], check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                             stdout=subprocess.PIPE, check=True).stdout
        return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()

    def not_after(self, name: str) -> _dt.datetime:
        out = run(["openssl", "x509", "-in", self.crt(name), "-noout", "-enddate"], check=True).stdout
        value = out.strip().split("=", 1)[1]
        return _dt.datetime.strptime(value, "%b %d %H:%M:%S %Y %Z")

    def context(self, verify: bool = True) -> ssl.SSLContext:
        """Client context trusting only the test CA (verify=False: no chain or name check)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            ctx.load_verify_locations(self.ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


# ---------------------------------------------------------------------------------------------
# Backends


class Dovecot(Service):
    """Dovecot IMAP + POP3 (plaintext ports) with user test / test@a.test, password secret.

    starttls=True (needs pki): ssl = yes, so the plaintext ports advertise STARTTLS / STLS, and
    disable_plaintext_auth = yes, so a client whose address differs from the listen address
    (postern connecting from 127.0.0.1 to listen="127.0.0.2") also sees LOGINDISABLED.
    """

    name = "dovecot"

    def __init__(self, workdir: Path, *, listen: str = LOCALHOST, starttls: bool = False,
                 pki: Optional[Pki] = None, instance: str = "postern-test",
                 ports: Optional[tuple[int, int]] = None):
        super().__init__(workdir)
        self.listen = listen
        self.imap_port, self.pop3_port = ports or free_ports(2, listen)
        self.conf = self.dir / "dovecot.conf"
        ssl_settings = ""
        if starttls:
            assert pki is not None, "starttls needs a pki"
            ssl_settings = (f"ssl_cert = <{pki.crt('default')}\nssl_key = <{pki.key('default')}\n"
                            "ssl_min_protocol = TLSv1.2")
        render("dovecot.conf.in", self.conf, DIR=self.dir, NAME=f"{instance}-{uuid.uuid4().hex[:6]}",
               LISTEN=listen, PORT_IMAP=self.imap_port, PORT_POP3=self.pop3_port,
               SSL="yes" if starttls else "no", SSL_SETTINGS=ssl_settings,
               DISABLE_PLAINTEXT_AUTH="yes" if starttls else "no")
        (self.dir / "users").write_text(f"{USER}@a.test:{{PLAIN}}{PASSWORD}\n{USER}:{{PLAIN}}{PASSWORD}\n")
        (self.dir / "mail").mkdir(exist_ok=True)
        (self.dir / "state").mkdir(exist_ok=True)
        shutil.chown(self.dir / "mail", "nobody", "nogroup")
        self.daemon = Daemon("dovecot", ["dovecot", "-F", "-c", self.conf], self.dir / "dovecot.stdout")
        self.logs = [self.dir / "dovecot.log", self.dir / "dovecot.stdout"]

    @property
    def imap_address(self) -> str:
        return f"{self.listen}:{self.imap_port}"

    @property
    def pop3_address(self) -> str:
        return f"{self.listen}:{self.pop3_port}"

    def start(self) -> "Dovecot":
        run(["doveconf", "-n", "-c", self.conf], check=True)
        self.daemon.start()
        wait_listening([self.imap_port, self.pop3_port], 15, self.daemon.proc, "dovecot")
        return self

    def stop(self):
        self.daemon.stop()

    def seed(self, msg: bytes, user: str = USER, mailbox: str = "INBOX") -> None:
        """Stores a message with `doveadm save` (no SMTP involved)."""
        run(["doveadm", "-c", self.conf, "save", "-u", user, "-m", mailbox], input=msg, check=True)


class Postfix(Service):
    """Postfix SMTP on a plaintext port; mail for test@a.test lands in vmail/a.test/test/.

    With pki, a second plaintext port (tls_port) advertises STARTTLS (security level may).
    """

    name = "postfix"

    def __init__(self, workdir: Path, *, pki: Optional[Pki] = None, port: Optional[int] = None):
        super().__init__(workdir)
        self.port, self.tls_port = free_ports(2)
        if port is not None:
            self.port = port
        etc = self.dir / "etc"
        tls_settings, tls_service = "", ""
        if pki is not None:
            tls_settings = (f"smtpd_tls_chain_files = {pki.key('default')}, {pki.crt('default')}\n"
                            "smtpd_tls_loglevel = 1")
            tls_service = (f"127.0.0.1:{self.tls_port} inet n - n - - smtpd\n"
                           "  -o smtpd_tls_security_level=may")
        else:
            self.tls_port = None
        render("postfix-main.cf.in", etc / "main.cf", DIR=self.dir, TLS_SETTINGS=tls_settings)
        render("postfix-master.cf.in", etc / "master.cf", PORT_SMTP=self.port, TLS_SERVICE=tls_service)
        (etc / "vmailbox").write_text("test@a.test a.test/test/\npostmaster@a.test a.test/postmaster/\n"
                                      "user@b.test b.test/user/\n")
        for sub in ("spool", "data", "vmail"):
            (self.dir / sub).mkdir(exist_ok=True)
        shutil.chown(self.dir / "vmail", "nobody", "nogroup")
        shutil.chown(self.dir / "data", "postfix")
        self.etc = etc
        self.daemon = Daemon("postfix", ["postfix", "-c", etc, "start-fg"], self.dir / "postfix.stdout")
        self.logs = [self.dir / "maillog", self.dir / "postfix.stdout"]

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def tls_address(self) -> str:
        return f"{LOCALHOST}:{self.tls_port}"

    def start(self) -> "Postfix":
        run(["postfix", "-c", self.etc, "check"], check=True, timeout=60)
        self.daemon.start()
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        wait_listening(ports, 30, self.daemon.proc, "postfix")
        return self

    def stop(self):
        if self.daemon.alive():
            run(["postfix", "-c", self.etc, "stop"], timeout=30)
            self.daemon.wait(15)
        self.daemon.stop()

    def maildir(self, user: str = "test", domain: str = "a.test") -> Path:
        return self.dir / "vmail" / domain / user

    def find_mail(self, subject: str, user: str = "test", domain: str = "a.test") -> Optional[Path]:
        needle = f"\nSubject: {subject}\n".encode()
        for sub in ("new", "cur"):
            folder = self.maildir(user, domain) / sub
            if not folder.is_dir():
                continue
            for f in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if needle in f.read_bytes().replace(b"\r\n", b"\n"):
                        return f
        return None

    def wait_for_mail(self, subject: str, timeout: float = 20.0, **kw) -> Path:
        """Polls the virtual maildir until a message with this Subject is delivered."""
        return wait_until(lambda: self.find_mail(subject, **kw), timeout,
                          f"delivery of Subject: {subject} into {self.maildir(**kw)}", interval=0.1)


def courier_root() -> Path:
    """Extracted courier-imap + courier-pop packages (they Conflict with dovecot, so they are
    not installed; `apt-get download` + `dpkg -x` once into CACHE, recipes section 3)."""
    root = CACHE / "courier-root"
    if (root / "usr/bin/imapd").exists() and (root / "usr/lib/courier/courier/courierpop3d").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="courier-debs-", dir=CACHE))
    try:
        work.chmod(0o755)
        run(["apt-get", "download", "courier-imap", "courier-pop"], cwd=work, check=True, timeout=120)
        tmp_root = work / "root"
        for deb in sorted(work.glob("*.deb")):
            run(["dpkg", "-x", deb, tmp_root], check=True)
        if root.exists():
            shutil.rmtree(root)
        tmp_root.rename(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


class Courier(Service):
    """Courier IMAP + POP3 (plaintext) with users test / test@a.test, password secret.

    Courier's authlib only reads the global /etc/courier/authdaemonrc and userdb, and talks to
    the global authdaemond socket: start() takes a machine-wide lock, backs those files up and
    edits them; stop() restores them. Avoid failed logins: Courier waits 5 s after one.
    """

    name = "courier"
    LOCK = Path("/tmp/postern-integration-courier.lock")
    ETC = Path("/etc/courier")
    GLOBAL_FILES = ["authdaemonrc", "userdb", "userdb.dat", "userdbshadow.dat", "userdb.lock", ".lock.userdb"]
    AUTHDAEMOND = "/usr/lib/courier/courier-authlib/authdaemond"

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.root = courier_root()
        self.imap_port, self.pop3_port = free_ports(2)
        self.home = self.dir / "mail" / "test"
        self.maildir = self.home / "Maildir"
        self.backup = self.dir / "etc-backup"
        self._lock = None
        self._edited = False
        self.authdaemond = Daemon("authdaemond", [self.AUTHDAEMOND], self.dir / "authdaemond.log", env={})
        self.imap = Daemon("courier-imap", ["sh", render("courier-imap.sh.in", self.dir / "imap.sh", 0o755,
                                                            ROOT=self.root, ADDRESS=LOCALHOST, PORT=self.imap_port)],
                           self.dir / "imap.log")
        self.pop3 = Daemon("courier-pop3", ["sh", render("courier-pop3.sh.in", self.dir / "pop3.sh", 0o755,
                                                            ROOT=self.root, ADDRESS=LOCALHOST, PORT=self.pop3_port)],
                           self.dir / "pop3.log")
        self.logs = [self.dir / "authdaemond.log", self.dir / "imap.log", self.dir / "pop3.log"]

    @property
    def imap_address(self) -> str:
        return f"{LOCALHOST}:{self.imap_port}"

    @property
    def pop3_address(self) -> str:
        return f"{LOCALHOST}:{self.pop3_port}"

    def _authtest(self) -> bool:
        return run(["authtest", USER, PASSWORD], timeout=10).returncode == 0

    def start(self) -> "Courier":
        self._lock = open(self.LOCK, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # another test run uses the global Courier config: wait for it (bounded)
            wait_until(lambda: self._try_lock(), 300, "the global Courier lock", interval=0.5)
        self.backup.mkdir(exist_ok=True)
        for name in self.GLOBAL_FILES:
            src = self.ETC / name
            if src.exists():
                shutil.copy2(src, self.backup / name)
        self._edited = True
        rc = (self.ETC / "authdaemonrc").read_text()
        rc = re.sub(r"(?m)^authmodulelist=.*$", 'authmodulelist="authuserdb"', rc)
        rc = re.sub(r"(?m)^daemons=.*$", "daemons=2", rc)
        rc = re.sub(r"(?m)^DEBUG_LOGIN=.*$", "DEBUG_LOGIN=1", rc)
        (self.ETC / "authdaemonrc").write_text(rc)
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.maildir.exists():
            run(["maildirmake", self.maildir], check=True)
        run(["chown", "-R", "nobody:nogroup", self.dir / "mail"], check=True)
        for name in ("userdb", "userdb.dat", "userdbshadow.dat"):
            with contextlib.suppress(FileNotFoundError):
                (self.ETC / name).unlink()
        for user in (USER, f"{USER}@a.test"):
            run(["userdb", user, "set", "uid=65534", "gid=65534", f"home={self.home}",
                 f"mail={self.maildir}"], check=True)
            pw = run(["userdbpw", "-md5"], input=f"{PASSWORD}\n{PASSWORD}\n".encode(), check=True).stdout.strip()
            run(["userdb", user, "set", f"systempw={pw}"], check=True)
        run(["makeuserdb"], check=True)
        run(["install", "-d", "-o", "courier", "-g", "courier", "-m", "750", "/run/courier/authdaemon"], check=True)
        self.authdaemond.start()
        wait_until(self._authtest, 15, "authdaemond answering authtest", interval=0.1,
                   proc=self.authdaemond.proc)
        self.imap.start()
        self.pop3.start()
        wait_listening([self.imap_port], 10, self.imap.proc, "courier imap")
        wait_listening([self.pop3_port], 10, self.pop3.proc, "courier pop3")
        return self

    def _try_lock(self) -> bool:
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def seed(self, msg: bytes) -> Path:
        """Drops a message into the Maildir's new/ folder (stored with LF line ends)."""
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.postern-test"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(msg.replace(b"\r\n", b"\n"))
        shutil.chown(tmp, "nobody", "nogroup")
        dest = self.maildir / "new" / name
        tmp.rename(dest)
        return dest

    def stop(self):
        for d in (self.imap, self.pop3, self.authdaemond):
            d.stop()
        if self._edited:
            for name in self.GLOBAL_FILES:
                saved = self.backup / name
                if saved.exists():
                    shutil.copy2(saved, self.ETC / name)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        (self.ETC / name).unlink()
            self._edited = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None


# ---------------------------------------------------------------------------------------------
# postern


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Postern(Service):
    """postern with a generated config in its folder (PKI files are referenced relative to it).

    p = Postern(dir, pki); p.backend("imap", dovecot.imap_address)
    p.listener("imap", "imap", "imap")  # -> port; p.port("imap") later
    p.start(); ...; p.session_end(client_port)
    """

    name = "postern"

    def __init__(self, workdir: Path, pki: Pki, *, default_certificate: str = "mail.default",
                 strict_sni: bool = False, min_version: str = "1.2", log_level: str = "info",
                 certificates: Optional[list[str]] = None):
        super().__init__(workdir)
        self.pki = pki
        self.tls = {"min_version": min_version, "default_certificate": default_certificate,
                    "strict_sni": strict_sni}
        self.server = {"log_level": log_level}
        self.certificates = list(certificates if certificates is not None else Pki.CERTS)
        self.extra_certificates: list[tuple[Path, Path]] = []  # (cert, key) files outside the Pki
        self.backends: list[dict] = []
        self.listeners: dict[str, dict] = {}
        self.config = self.dir / "postern.toml"
        self.log = self.dir / "postern.log"
        self.logs = [self.log]
        self.daemon: Optional[Daemon] = None

    def _rel(self, path: Path) -> str:
        try:
            return os.path.relpath(path, self.dir)
        except ValueError:
            return str(path)

    def backend(self, name: str, address: str, connect_timeout: str = "2s", **extra) -> None:
        self.backends.append({"name": name, "address": address, "connect_timeout": connect_timeout, **extra})

    def listener(self, name: str, protocol: str, backend: str, tls: str = "implicit",
                 host: str = LOCALHOST, **extra) -> int:
        port = free_port(host)
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.listeners[name] = {"listen": listen, "protocol": protocol, "tls": tls,
                                "backend": backend, **extra}
        return port

    def port(self, name: str) -> int:
        return int(self.listeners[name]["listen"].rsplit(":", 1)[1])

    def listen_address(self, name: str) -> str:
        return self.listeners[name]["listen"]

    def config_text(self) -> str:
        out = ["# generated by tests/integration/harness.py", "[server]"]
        out += [f"{k} = {_toml(v)}" for k, v in self.server.items()]
        out += ["", "[tls]"] + [f"{k} = {_toml(v)}" for k, v in self.tls.items()]
        for name in self.certificates:
            out += ["", "[[certificate]]", f"cert = {_toml(self._rel(self.pki.crt(name)))}",
                    f"key = {_toml(self._rel(self.pki.key(name)))}"]
        for cert, key in self.extra_certificates:
            out += ["", "[[certificate]]", f"cert = {_toml(str(cert))}", f"key = {_toml(str(key))}"]
        for b in self.backends:
            out += ["", "[[backend]]"] + [f"{k} = {_toml(v)}" for k, v in b.items()]
        for name, l in self.listeners.items():
            out += ["", f"# {name}", "[[listener]]"] + [f"{k} = {_toml(v)}" for k, v in l.items()]
        return "\n".join(out) + "\n"

    def write_config(self, path: Optional[Path] = None, text: Optional[str] = None) -> Path:
        path = path or self.config
        path.write_text(text if text is not None else self.config_text())
        return path

    def check(self, path: Optional[Path] = None) -> subprocess.CompletedProcess:
        """`postern check --config` (path defaults to the generated config)."""
        require_postern()
        if path is None:
            path = self.write_config()
        return run([POSTERN_BIN, "check", "--config", path], timeout=30)

    def start(self, timeout: float = 15.0) -> "Postern":
        require_postern()
        self.write_config()
        self.daemon = Daemon("postern", [POSTERN_BIN, "run", "--config", self.config], self.log)
        self.daemon.start()
        wait_listening([self.port(n) for n in self.listeners], timeout, self.daemon.proc, "postern")
        return self

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        return self.daemon.stop(timeout) if self.daemon else None

    def text(self) -> str:
        return self.log_text()

    def wait_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match:
        """First match of the regex in the log (from byte offset since), polled until timeout."""
        rx = re.compile(pattern, re.M)

        def look():
            with contextlib.suppress(FileNotFoundError):
                with open(self.log, "rb") as f:
                    f.seek(since)
                    return rx.search(f.read().decode(errors="replace"))
            return None
        return wait_until(look, timeout, f"postern log line matching {pattern!r}", interval=0.05)

    def log_size(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self.log.stat().st_size
        return 0

    def session_end(self, client_port: int, listener: Optional[str] = None, *, timeout: float = 10.0,
                    host: str = LOCALHOST, since: int = 0) -> dict[str, str]:
        """Fields of the `session end` line for the client's source port (polls), also matching
        listener= when the listener's name is given (a source port alone may be reused)."""
        client = f"[{host}]:{client_port}" if ":" in host else f"{host}:{client_port}"
        rx = r"^.*\bsession end\b.*\bclient=" + re.escape(client) + r"\s"
        if listener is not None:
            rx += r".*\blistener=" + re.escape(self.listen_address(listener)) + r"\s"
        m = self.wait_log(rx + r".*$", timeout, since)
        return parse_fields(m.group(0))


def parse_fields(line: str) -> dict[str, str]:
    """key=value fields of a log line (values may be "quoted with spaces"); _line = the line."""
    fields = {k: (v[1:-1] if v.startswith('"') else v)
              for k, v in re.findall(r'\b([a-z_]+)=("[^"]*"|\S*)', line)}
    fields["_line"] = line
    return fields


def require_postern() -> None:
    if not (POSTERN_BIN.is_file() and os.access(POSTERN_BIN, os.X_OK)):
        raise AssertionError(f"postern binary not found at {POSTERN_BIN} (build it, or set POSTERN_BIN)")


# ---------------------------------------------------------------------------------------------
# Clients


def tls_connect(port: int, sni: Optional[str], *, host: str = LOCALHOST, context: Optional[ssl.SSLContext] = None,
                timeout: float = 10.0) -> ssl.SSLSocket:
    """TLS client socket to host:port sending SNI sni (None: no SNI). Default: no verification."""
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return _wrap(context, (host, port), sni, timeout)


def _wrap(context: ssl.SSLContext, address, sni: Optional[str], timeout) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


class LineClient:
    """Line-oriented dialogue over a (TLS or plain) socket, for exact protocol assertions."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.file = sock.makefile("rb")
        self.transcript: list[str] = []

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def readline(self) -> str:
        line = self.file.readline()
        self.transcript.append("S: " + line.decode(errors="replace").rstrip("\r\n"))
        return line.decode(errors="replace")

    def send(self, line: str) -> None:
        self.transcript.append("C: " + line)
        self.sock.sendall(line.encode() + b"\r\n")

    def imap(self, tag: str, command: str) -> list[str]:
        """Sends `tag command`, returns every line up to and including the tagged one."""
        self.send(f"{tag} {command}")
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed before the tagged reply to {command!r}: {lines}")
            lines.append(line)
            if line.startswith(tag + " "):
                return lines

    def pop3_multiline(self, command: str) -> list[str]:
        self.send(command)
        first = self.readline()
        lines = [first]
        if not first.startswith("+OK"):
            return lines
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed inside the reply to {command!r}: {lines}")
            lines.append(line)
            if line.rstrip("\r\n") == ".":
                return lines

    def smtp_reply(self) -> list[str]:
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed inside an SMTP reply: {lines}")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def smtp(self, command: str) -> list[str]:
        self.send(command)
        return self.smtp_reply()

    def read_to_eof(self, limit: int = 1 << 16) -> str:
        """Everything until the peer closes (bounded by the socket timeout)."""
        data = b""
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            while len(data) < limit:
                chunk = self.file.read1(4096)
                if not chunk:
                    break
                data += chunk
        text = data.decode(errors="replace")
        self.transcript.append("S: " + text)
        return text

    def starttls(self, sni: Optional[str], context: Optional[ssl.SSLContext] = None) -> None:
        """Upgrades this plaintext dialogue to TLS in place, sending SNI sni (None: none), after
        the server's go-ahead was read. Default context: no verification."""
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.file.close()  # the socket stays open; makefile() is made again on the TLS socket
        self.transcript.append(f"-- TLS handshake (SNI {sni})")
        self.sock = context.wrap_socket(self.sock, server_hostname=sni)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class ImapSni(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS: connects to connect_host, sends SNI sni (host name checked)."""

    def __init__(self, sni: Optional[str], port: int, *, ssl_context: ssl.SSLContext,
                 connect_host: str = LOCALHOST, timeout: float = 10.0):
        self._connect_host, self._sni = connect_host, sni
        super().__init__(sni or connect_host, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout):
        return _wrap(self.ssl_context, (self._connect_host, self.port), self._sni, timeout)


class Pop3Sni(poplib.POP3_SSL):
    def __init__(self, sni: Optional[str], port: int, *, context: ssl.SSLContext,
                 connect_host: str = LOCALHOST, timeout: float = 10.0):
        self._connect_host, self._sni = connect_host, sni
        try:
            super().__init__(sni or connect_host, port, context=context, timeout=timeout)
        except BaseException:  # poplib leaves the socket open when the greeting is -ERR
            if getattr(self, "sock", None) is not None:
                self.sock.close()
            raise

    def _create_socket(self, timeout):
        return _wrap(self.context, (self._connect_host, self.port), self._sni, timeout)


class SmtpSni(smtplib.SMTP_SSL):
    def __init__(self, sni: Optional[str], port: int, *, context: ssl.SSLContext,
                 connect_host: str = LOCALHOST, timeout: float = 10.0):
        self._connect_host, self._sni = connect_host, sni
        super().__init__(sni or connect_host, port, context=context, timeout=timeout)

    def _get_socket(self, host, port, timeout):
        return _wrap(self.context, (self._connect_host, port), self._sni, timeout)


class ImapStarttls(imaplib.IMAP4):
    """imaplib in plaintext to connect_host; starttls(ssl_context=...) then sends SNI sni and
    checks the certificate against it (imaplib passes self.host as server_hostname)."""

    def __init__(self, sni: Optional[str], port: int, *, connect_host: str = LOCALHOST,
                 timeout: float = 10.0):
        self._connect_host = connect_host
        super().__init__(sni or connect_host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self._connect_host, self.port), timeout)


class Pop3Starttls(poplib.POP3):
    """poplib in plaintext to connect_host; stls(context=...) then sends SNI sni."""

    def __init__(self, sni: Optional[str], port: int, *, connect_host: str = LOCALHOST,
                 timeout: float = 10.0):
        self._connect_host = connect_host
        super().__init__(sni or connect_host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self._connect_host, self.port), timeout)


class SmtpStarttls(smtplib.SMTP):
    """smtplib in plaintext to connect_host; starttls(context=...) then sends SNI sni
    (smtplib passes self._host as server_hostname)."""

    def __init__(self, sni: Optional[str], port: int, *, connect_host: str = LOCALHOST,
                 timeout: float = 10.0, local_hostname: str = "client.c.test"):
        super().__init__(timeout=timeout, local_hostname=local_hostname)
        self.connect(connect_host, port)
        self._host = sni or connect_host


class RecordingRelay(Service):
    """A loopback TCP relay to ``target`` ("host:port") that records every connection: what the
    connecting side (postern) sent towards the target (``to_backend``) and what came back
    (``to_client``). Put it between postern and a backend to see exactly which bytes the
    backend received. ``mark()`` + ``connections(since=mark)`` select the connections opened
    after a point in a test.
    """

    name = "relay"

    class Connection:
        def __init__(self, number: int, peer: tuple):
            self.number, self.peer = number, peer
            self.to_backend = bytearray()
            self.to_client = bytearray()
            self.closed = threading.Event()

    def __init__(self, workdir: Path, target: str, name: str = "relay"):
        super().__init__(workdir)
        self.name = name
        host, port = target.rsplit(":", 1)
        self.target = (host.strip("[]"), int(port))
        self.log = self.dir / f"{name}.log"
        self.logs = [self.log]
        self._lock = threading.Lock()
        self._conns: list[RecordingRelay.Connection] = []
        self._listener: Optional[socket.socket] = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.port = 0

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def start(self) -> "RecordingRelay":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOCALHOST, 0))
        s.listen(64)
        s.settimeout(0.2)
        self._listener, self.port = s, s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        for t in self._threads:
            t.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def mark(self) -> int:
        with self._lock:
            return len(self._conns)

    def connections(self, since: int = 0) -> list["RecordingRelay.Connection"]:
        with self._lock:
            return list(self._conns[since:])

    def _write_log(self, line: str) -> None:
        with self._lock, open(self.log, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                conn = RecordingRelay.Connection(len(self._conns), peer)
                self._conns.append(conn)
            t = threading.Thread(target=self._pump, args=(conn, client), daemon=True,
                                 name=f"{self.name}-{conn.number}")
            t.start()
            self._threads.append(t)

    def _pump(self, conn: "RecordingRelay.Connection", client: socket.socket) -> None:
        self._write_log(f"#{conn.number} from {conn.peer[0]}:{conn.peer[1]}")
        try:
            backend = socket.create_connection(self.target, 5)
        except OSError as e:
            self._write_log(f"#{conn.number} connect {self.target}: {e}")
            client.close()
            conn.closed.set()
            return
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, (backend, conn.to_backend, ">"))
        sel.register(backend, selectors.EVENT_READ, (client, conn.to_client, "<"))
        open_sides = 2
        try:
            while open_sides and not self._stopping.is_set():
                for key, _ in sel.select(0.2):
                    dest, record, arrow = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        with self._lock:
                            record += data
                        self._write_log(f"#{conn.number} {arrow} {data!r}")
                        with contextlib.suppress(OSError):
                            dest.sendall(data)
                    else:
                        sel.unregister(key.fileobj)
                        open_sides -= 1
                        with contextlib.suppress(OSError):
                            dest.shutdown(socket.SHUT_WR)
        finally:
            sel.close()
            client.close()
            backend.close()
            self._write_log(f"#{conn.number} closed")
            conn.closed.set()


def parse_client_hello_sni(data: bytes) -> Optional[bytes]:
    """server_name from a TLS ClientHello record (None if the extension is absent)."""
    if len(data) < 9 or data[0] != 0x16 or data[5] != 0x01:
        raise ValueError("not a TLS ClientHello")
    p = 9 + 2 + 32
    p += 1 + data[p]                                   # session id
    p += 2 + struct.unpack_from("!H", data, p)[0]      # cipher suites
    p += 1 + data[p]                                   # compression methods
    end = p + 2 + struct.unpack_from("!H", data, p)[0]
    p += 2
    while p + 4 <= end:
        ext_type, ext_len = struct.unpack_from("!HH", data, p)
        p += 4
        if ext_type == 0:
            name_len = struct.unpack_from("!H", data, p + 3)[0]
            return data[p + 5:p + 5 + name_len]
        p += ext_len
    return None


def sni_sent_by(make_argv: Callable[[int], list], timeout: float = 10.0) -> Optional[bytes]:
    """Runs a CLI client (make_argv(port) -> argv) against a local socket that only records the
    ClientHello, and returns the SNI it carried (bytes as sent, None when absent)."""
    srv = socket.socket()
    srv.bind((LOCALHOST, 0))
    srv.listen(1)
    srv.settimeout(timeout)
    port = srv.getsockname()[1]
    proc = subprocess.Popen([str(a) for a in make_argv(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = srv.accept()
        conn.settimeout(timeout)
        data = b""
        with conn:
            while len(data) < 5 or len(data) < 5 + struct.unpack_from("!H", data, 3)[0]:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return parse_client_hello_sni(data)
    finally:
        srv.close()
        with contextlib.suppress(Exception):
            proc.kill()
        proc.wait(10)
        proc.stdin.close()


# ---------------------------------------------------------------------------------------------
# unittest base class


class IntegrationCase(unittest.TestCase):
    """Base class: per-class temp dir, owned services stopped in cleanups, logs on failure."""

    tmp: Path
    _owned: list

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = Path(tempfile.mkdtemp(prefix=f"postern-{cls.__name__}-"))
        cls.tmp.chmod(0o755)  # backends run mail processes as nobody
        cls._owned = []
        cls.addClassCleanup(cls._remove_tmp)
        try:
            cls.start_fixtures()
        except BaseException:
            cls._dump_logs(cls._owned, f"{cls.__name__}.setUpClass failed")
            raise

    @classmethod
    def start_fixtures(cls):
        """Override: start the class's services as cls.own(Service(...)).start() (owned before
        starting, so a service that fails half-way is still stopped)."""

    @classmethod
    def start_mail_servers(cls) -> "Postern":
        """The usual stack: cls.pki, a started Dovecot (cls.dovecot) and Postfix (cls.postfix),
        and cls.postern, returned not yet started, for the test to add backends and listeners."""
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix")).start()
        cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        return cls.postern

    @classmethod
    def own(cls, service):
        """Registers a service: stopped in the class cleanup, logs dumped on failure."""
        cls._owned.append(service)
        cls.addClassCleanup(service.stop)
        return service

    def own_for_test(self, service):
        """Like own(), for a service started by one test (stopped in that test's cleanup)."""
        self._test_owned.append(service)
        self.addCleanup(service.stop)
        return service

    @classmethod
    def _remove_tmp(cls):
        if KEEP_TMP:
            sys.stderr.write(f"\n[harness] kept {cls.tmp}\n")
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def workdir_for_test(self) -> Path:
        d = self.tmp / self._testMethodName
        d.mkdir(exist_ok=True)
        return d

    def run(self, result=None):
        self._test_owned = []
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self._dump_logs(self._owned + self._test_owned, self.id())
        return outcome

    @staticmethod
    def _dump_logs(services, title: str, lines: int = 120):
        out = [f"\n===== logs for {title} ====="]
        for s in services:
            for log in getattr(s, "logs", []):
                try:
                    text = Path(log).read_text(errors="replace").splitlines()
                except FileNotFoundError:
                    continue
                out.append(f"----- {s.name}: {log} (last {min(lines, len(text))} of {len(text)} lines)")
                out.extend(text[-lines:])
        out.append("===== end of logs =====\n")
        sys.stderr.write("\n".join(out) + "\n")
        sys.stderr.flush()
