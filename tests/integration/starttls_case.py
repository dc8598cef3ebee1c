"""Shared fixture of the STARTTLS test files (test_starttls_*.py): STARTTLS listeners
(`tls = "starttls"`, ports 143/110/25/587) through postern against real Dovecot and Postfix.

Before TLS postern speaks for itself and no backend is connected (checked with a recording relay
between postern and the backend); after the handshake the backend's own dialogue is relayed with
STARTTLS/STLS/LOGINDISABLED filtered out.

The backends advertise STARTTLS/STLS themselves (Dovecot with ssl = yes, Postfix's STARTTLS
port) and Postfix offers AUTH (SASL through Dovecot), so every filter assertion can fail.
"""

import base64
import contextlib
import re
import socket
import ssl

from harness import (Dovecot, ImapStarttls, IntegrationCase, LOCALHOST, LineClient, PASSWORD, Pki,
                     Postern, Postfix, RecordingRelay, USER, WaitTimeout, free_port, no_verify,
                     run, wait_until)

HOSTNAME = "mx.postern.test"          # [server] hostname
LIMITS_HOSTNAME = "limits.postern.test"  # listener hostname of the *_lim listeners
BACKEND_SMTP_NAME = "mx.backend.test"   # Postfix's myhostname (servers/postfix-main.cf.in)
MAX_ERRORS = 3


def add_sasl(dovecot: Dovecot, postfix: Postfix) -> int:
    """Postfix offers AUTH PLAIN LOGIN, checked by Dovecot's auth service over TCP (written before
    the daemons start). Postfix advertises AUTH on plaintext too (smtpd_tls_auth_only = no), so
    postern's pre-TLS EHLO must hide what its probe learned."""
    port = free_port()
    with open(dovecot.conf, "a") as f:
        f.write(f"\nservice auth {{\n  inet_listener postfix-sasl {{\n    address = {LOCALHOST}\n"
                f"    port = {port}\n  }}\n}}\n")
    with open(postfix.etc / "main.cf", "a") as f:
        f.write("\nsmtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
                f"smtpd_sasl_path = inet:{LOCALHOST}:{port}\n")
    return port


def recv_until(sock: socket.socket, pattern: bytes, what: str, limit: int = 1 << 16) -> bytes:
    """Reads from a plaintext socket until the regex matches (multiline) or the peer closes."""
    data = b""
    rx = re.compile(pattern, re.M)
    while not rx.search(data) and len(data) < limit:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"timed out waiting for {what}; got {data!r}") from None
        if not chunk:
            raise AssertionError(f"connection closed while waiting for {what}; got {data!r}")
        data += chunk
    return data


def is_probe(conn: RecordingRelay.Connection) -> bool:
    """postern's own EHLO probe of the SMTP backend (greeting, EHLO <hostname>, QUIT)."""
    return re.fullmatch(rb"EHLO " + re.escape(HOSTNAME.encode()) + rb"\r\n(QUIT\r\n)?",
                        bytes(conn.to_backend)) is not None


def b64_plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class StartTlsCase(IntegrationCase):
    """One postern with STARTTLS listeners in front of Dovecot and Postfix; *_rec listeners go
    through a RecordingRelay, *_lim listeners have plaintext_timeout = 1s and max_errors = 3.
    The test_starttls_*.py files subclass it (each class starts its own stack)."""

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        # On 127.0.0.1 postern's connections count as secured for Dovecot (same address), so
        # logins work, and ssl = yes makes it advertise STARTTLS / STLS for postern to filter.
        cls.dovecot = Dovecot(cls.tmp / "dovecot", starttls=True, pki=cls.pki)
        cls.postfix = Postfix(cls.tmp / "postfix", pki=cls.pki)
        add_sasl(cls.dovecot, cls.postfix)
        cls.own(cls.dovecot).start()
        cls.own(cls.postfix).start()
        smtp_backend = cls.postfix.tls_address  # the port that advertises STARTTLS
        cls.relays = {
            "imap": cls.own(RecordingRelay(cls.tmp / "relay-imap", cls.dovecot.imap_address, "relay-imap")).start(),
            "pop3": cls.own(RecordingRelay(cls.tmp / "relay-pop3", cls.dovecot.pop3_address, "relay-pop3")).start(),
            "smtp": cls.own(RecordingRelay(cls.tmp / "relay-smtp", smtp_backend, "relay-smtp")).start(),
            "submission": cls.own(RecordingRelay(cls.tmp / "relay-sub", smtp_backend, "relay-sub")).start(),
        }
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.server["hostname"] = HOSTNAME
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", smtp_backend)
        for name, relay in cls.relays.items():
            p.backend(f"{name}_rec", relay.address)
        st = {"tls": "starttls"}
        p.listener("imap", "imap", "imap", **st)
        p.listener("pop3", "pop3", "pop3", **st)
        p.listener("smtp", "smtp", "smtp", **st)                      # port 25: require_tls false
        p.listener("submission", "smtp", "smtp", submission=True, **st)  # 587: require_tls true
        p.listener("imap_rec", "imap", "imap_rec", **st)
        p.listener("pop3_rec", "pop3", "pop3_rec", **st)
        p.listener("smtp_rec", "smtp", "smtp_rec", **st)
        p.listener("submission_rec", "smtp", "submission_rec", submission=True, **st)
        lim = {"plaintext_timeout": "1s", "max_errors": MAX_ERRORS, "hostname": LIMITS_HOSTNAME, **st}
        p.listener("imap_lim", "imap", "imap", **lim)
        p.listener("pop3_lim", "pop3", "pop3", **lim)
        p.listener("smtp_lim", "smtp", "smtp", submission=True, **lim)
        p.start()
        # postern learns the backend's EHLO extensions with a probe right after startup; give it
        # a bounded moment (test_smtp_ehlo_offers_backend_extensions checks the result)
        with_size = lambda: "SIZE" in cls.pre_tls_ehlo("submission")
        try:
            wait_until(with_size, 10, "postern's EHLO probe of Postfix", interval=0.2)
        except (WaitTimeout, AssertionError, OSError):
            pass

    # -- helpers ---------------------------------------------------------------------------

    @classmethod
    def pre_tls_ehlo(cls, listener: str) -> str:
        c = LineClient(socket.create_connection((LOCALHOST, cls.postern.port(listener)), 5), 5)
        try:
            c.smtp_reply()
            return "".join(c.smtp("EHLO probe-wait.c.test"))
        finally:
            c.close()

    def plain(self, listener: str, timeout: float = 10.0) -> LineClient:
        return LineClient(socket.create_connection((LOCALHOST, self.postern.port(listener)), 5), timeout)

    def raw(self, listener: str) -> socket.socket:
        s = socket.create_connection((LOCALHOST, self.postern.port(listener)), 5)
        s.settimeout(10)
        self.addCleanup(s.close)
        return s

    def session(self, client_port: int, listener: str, **expected) -> dict:
        fields = self.postern.session_end(client_port, listener)
        for key, value in expected.items():
            self.assertEqual(fields.get(key), value, f"{key}= in session line: {fields['_line']}")
        return fields

    def served(self, sock) -> str:
        return self.pki.identify(sock.getpeercert(binary_form=True))

    def backend_sessions(self, relay: str, since: int, count: int = 1, timeout: float = 10.0):
        """The relay's connections since the mark, without postern's SMTP probes; waits until
        `count` of them are closed (so their byte record is complete)."""
        r = self.relays[relay]

        def done():
            conns = [c for c in r.connections(since) if not (c.closed.is_set() and is_probe(c))]
            return conns if len(conns) >= count and all(c.closed.is_set() for c in conns) else None
        conns = wait_until(done, timeout, f"{count} closed backend connection(s) through {relay}")
        return [c for c in conns if not is_probe(c)]

    def assert_no_backend_connection(self, relay: str, since: int) -> None:
        """No connection to the backend since the mark. Called once postern has ended the
        session: a connection it opened is in the relay's accept queue by then, and sync()
        waits until the relay has accepted everything queued before its own marker."""
        self.relays[relay].sync()
        conns = [c for c in self.relays[relay].connections(since) if not is_probe(c)]
        self.assertEqual([bytes(c.to_backend) for c in conns], [],
                         f"postern connected the backend ({relay}) before TLS")

    def imap_bystander(self, listener: str = "imap") -> ImapStarttls:
        """A client upgraded and logged in, to prove a session meanwhile is unaffected."""
        m = ImapStarttls("mail.a.test", self.postern.port(listener))
        self.addCleanup(lambda: contextlib.suppress(OSError)(m.shutdown)() if m.state != "LOGOUT" else None)
        m.starttls(ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        return m

    def assert_bystander_works(self, m: ImapStarttls) -> None:
        self.assertEqual(m.select("INBOX")[0], "OK")
        self.assertEqual(m.noop()[0], "OK")
        m.logout()

    def dovecot_log_size(self) -> int:
        try:
            return (self.dovecot.dir / "dovecot.log").stat().st_size
        except FileNotFoundError:
            return 0

    def dovecot_log_since(self, offset: int) -> str:
        with open(self.dovecot.dir / "dovecot.log", "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def curl(self, *args, timeout=40):
        return run(["curl", "-sS", "-v", "--max-time", "20", *args], timeout=timeout)
