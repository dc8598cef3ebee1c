"""The backends postern is put in front of: Dovecot, Postfix and Courier, each started from a
servers/*.in template on ports asked from the OS."""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

from .base import (CACHE, LOCALHOST, PASSWORD, USER, Daemon, Service, free_ports, render, run,
                   wait_listening, wait_until)
from .pki import Pki


class Dovecot(Service):
    """Dovecot IMAP + POP3 (plaintext ports) with user test / test@a.test, password secret.

    starttls=True (needs pki): ssl = yes, so the plaintext ports advertise STARTTLS / STLS, and
    disable_plaintext_auth = yes, so a client whose address differs from the listen address
    (postern connecting from 127.0.0.1 to listen="127.0.0.2") also sees LOGINDISABLED.

    haproxy=True: one more IMAP and POP3 port each (imap_haproxy_port, pop3_haproxy_port) that
    want a PROXY v1/v2 header from 127.0.0.0/8 first; the login lines (dovecot.log) then name
    the header's client: `rip=... rport=... lip=... lport=... local_name=<authority> secured`.

    login_trusted_networks (e.g. "127.0.0.1"): Dovecot believes those hosts' forwarded client
    addresses (IMAP ID x-originating-*, POP3 XCLIENT, offered by "[XCLIENT]" in its greeting).

    extra: more dovecot.conf text, appended (e.g. service blocks with other process limits).
    """

    name = "dovecot"

    def __init__(self, workdir: Path, *, listen: str = LOCALHOST, starttls: bool = False,
                 pki: Optional[Pki] = None, instance: str = "postern-test",
                 ports: Optional[tuple[int, int]] = None, haproxy: bool = False,
                 haproxy_ports: Optional[tuple[int, int]] = None,
                 login_trusted_networks: Optional[str] = None, extra: str = ""):
        super().__init__(workdir)
        self.listen = listen
        self.imap_port, self.pop3_port = ports or free_ports(2, listen)
        self.imap_haproxy_port = self.pop3_haproxy_port = None
        self.conf = self.dir / "dovecot.conf"
        ssl_settings = ""
        if starttls:
            assert pki is not None, "starttls needs a pki"
            ssl_settings = (f"ssl_cert = <{pki.crt('default')}\nssl_key = <{pki.key('default')}\n"
                            "ssl_min_protocol = TLSv1.2")
        haproxy_settings, imap_haproxy, pop3_haproxy = "", "", ""
        if haproxy:
            self.imap_haproxy_port, self.pop3_haproxy_port = haproxy_ports or free_ports(2, listen)
            haproxy_settings = "haproxy_trusted_networks = 127.0.0.0/8"
            imap_haproxy = (f"  inet_listener imap_haproxy {{\n    port = {self.imap_haproxy_port}\n"
                            "    haproxy = yes\n  }")
            pop3_haproxy = (f"  inet_listener pop3_haproxy {{\n    port = {self.pop3_haproxy_port}\n"
                            "    haproxy = yes\n  }")
        render("dovecot.conf.in", self.conf, DIR=self.dir, NAME=f"{instance}-{uuid.uuid4().hex[:6]}",
               LISTEN=listen, PORT_IMAP=self.imap_port, PORT_POP3=self.pop3_port,
               SSL="yes" if starttls else "no", SSL_SETTINGS=ssl_settings,
               DISABLE_PLAINTEXT_AUTH="yes" if starttls else "no",
               HAPROXY_SETTINGS=haproxy_settings, IMAP_HAPROXY=imap_haproxy,
               POP3_HAPROXY=pop3_haproxy)
        if login_trusted_networks is not None:
            extra = f"login_trusted_networks = {login_trusted_networks}\n" + extra
        if extra:
            with open(self.conf, "a") as f:
                f.write(extra.rstrip("\n") + "\n")
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

    @property
    def imap_haproxy_address(self) -> str:
        return f"{self.listen}:{self.imap_haproxy_port}"

    @property
    def pop3_haproxy_address(self) -> str:
        return f"{self.listen}:{self.pop3_haproxy_port}"

    def start(self) -> "Dovecot":
        run(["doveconf", "-n", "-c", self.conf], check=True)
        self.daemon.start()
        ports = [self.imap_port, self.pop3_port]
        ports += [p for p in (self.imap_haproxy_port, self.pop3_haproxy_port) if p]
        wait_listening(ports, 15, self.daemon.proc, "dovecot")
        return self

    def wait_login(self, rip: str, rport: int, timeout: float = 10.0, since: int = 0) -> str:
        """The `Login:` line (imap-login or pop3-login) of the client rip:rport, polled."""
        rx = (r"^.*-login: Info: Login: .*\brip=" + re.escape(rip) + r", rport=" + str(rport)
              + r",.*$")
        return self.wait_log(rx, timeout, since).group(0)

    def stop(self):
        self.daemon.stop()

    def seed(self, msg: bytes, user: str = USER, mailbox: str = "INBOX") -> None:
        """Stores a message with `doveadm save` (no SMTP involved)."""
        run(["doveadm", "-c", self.conf, "save", "-u", user, "-m", mailbox], input=msg, check=True)


class Postfix(Service):
    """Postfix SMTP on a plaintext port; mail for test@a.test lands in vmail/a.test/test/.

    With pki, a second plaintext port (tls_port) advertises STARTTLS (security level may).
    With proxy=True, one more port (proxy_port) wants a PROXY v1/v2 header first
    (smtpd_upstream_proxy_protocol = haproxy): the header's client is the one Postfix logs and
    writes into the Received: header.

    xclient_hosts (e.g. "127.0.0.1"): smtpd_authorized_xclient_hosts, the hosts whose XCLIENT
    Postfix believes (and to which its EHLO offers XCLIENT).
    """

    name = "postfix"

    def __init__(self, workdir: Path, *, pki: Optional[Pki] = None, port: Optional[int] = None,
                 proxy: bool = False, proxy_port: Optional[int] = None,
                 xclient_hosts: Optional[str] = None):
        super().__init__(workdir)
        self.port, self.tls_port, self.proxy_port = free_ports(3)
        if port is not None:
            self.port = port
        if proxy_port is not None:
            self.proxy_port = proxy_port
        proxy_service = ""
        if proxy:
            proxy_service = (f"127.0.0.1:{self.proxy_port} inet n - n - - smtpd\n"
                             "  -o smtpd_upstream_proxy_protocol=haproxy")
        else:
            self.proxy_port = None
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
        if xclient_hosts is not None:
            with open(etc / "main.cf", "a") as f:
                f.write(f"smtpd_authorized_xclient_hosts = {xclient_hosts}\n")
        render("postfix-master.cf.in", etc / "master.cf", PORT_SMTP=self.port, TLS_SERVICE=tls_service,
               PROXY_SERVICE=proxy_service)
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

    @property
    def proxy_address(self) -> str:
        return f"{LOCALHOST}:{self.proxy_port}"

    def start(self) -> "Postfix":
        run(["postfix", "-c", self.etc, "check"], check=True, timeout=60)
        self.daemon.start()
        ports = [self.port] + [p for p in (self.tls_port, self.proxy_port) if p]
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

    @staticmethod
    def received(mail: Path) -> list[str]:
        """The Received: headers of a delivered mail, each unfolded onto one line."""
        head = mail.read_bytes().replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode(errors="replace")
        unfolded = re.sub(r"\n[ \t]+", " ", head)
        return [l for l in unfolded.split("\n") if l.lower().startswith("received:")]

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
