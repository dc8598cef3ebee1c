"""Shared fixture of test_xclient.py: postern in front of a Dovecot and a Postfix that trust
postern's address (127.0.0.1) to tell them who the client is, and of ones that do not.

Every test client binds to CLIENT_IP (127.0.0.2) and connects to postern on 127.0.0.1, and
postern reaches the backends from 127.0.0.1: a backend that logs 127.0.0.2 learned the client's
address from postern (`xclient = true`), one that logs 127.0.0.1 saw only postern.

- Dovecot with `login_trusted_networks = 127.0.0.1` (IMAP ID x-originating-*, POP3 XCLIENT
  offered by "[XCLIENT]" in its greeting); its log's Login lines carry rip/rport/lip/lport
  (servers/dovecot.conf.in). A second Dovecot trusts nobody.
- Postfix with `smtpd_authorized_xclient_hosts = 127.0.0.1` on its port, and a second smtpd
  service of the same Postfix that overrides it to nobody (a second Postfix costs seconds).
- postern listeners `<kind>_x` go to backends with `xclient = true`, the others (same servers)
  without it; `*_untrusting` go with `xclient = true` to the servers that do not trust postern.
"""

import re
import socket
import ssl
from pathlib import Path
from typing import Optional

from harness import (Dovecot, IntegrationCase, LOCALHOST, LineClient, PASSWORD, Pki, Postern,
                     Postfix, USER, free_port, message, no_verify, wait_listening, wait_until)

CLIENT_IP = "127.0.0.2"    # where every test client connects from
POSTERN_IP = LOCALHOST     # where postern reaches the backends from
SPOOFED_IP = "203.0.113.66"
SPOOFED_PORT = "4444"
SNI = "mail.a.test"


def add_untrusting_smtpd(postfix: Postfix) -> int:
    """A second smtpd service of this Postfix (written before it starts) that authorizes no
    XCLIENT host: Postfix answers postern's XCLIENT there with 550."""
    port = free_port()
    with open(postfix.etc / "master.cf", "a") as f:
        f.write(f"{LOCALHOST}:{port} inet n - n - - smtpd\n  -o smtpd_authorized_xclient_hosts=\n")
    return port


def first_received(mail: Path) -> str:
    """The topmost Received: header of a delivered message, unfolded."""
    head = mail.read_bytes().replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode(errors="replace")
    m = re.search(r"^Received:(.*(?:\n[ \t].*)*)", head, re.M)
    assert m, f"no Received: header in {mail}:\n{head}"
    return " ".join(m.group(1).split())


class XclientCase(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot", login_trusted_networks=POSTERN_IP)).start()
        cls.dovecot_untrusting = cls.own(Dovecot(cls.tmp / "dovecot-untrusting")).start()
        cls.postfix = Postfix(cls.tmp / "postfix", xclient_hosts=POSTERN_IP)
        untrusting_port = add_untrusting_smtpd(cls.postfix)
        cls.own(cls.postfix).start()
        wait_listening([untrusting_port], 30, cls.postfix.daemon.proc, "postfix (untrusting smtpd)")

        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        p.backend("imap_x", cls.dovecot.imap_address, xclient=True)
        p.backend("pop3_x", cls.dovecot.pop3_address, xclient=True)
        p.backend("smtp_x", cls.postfix.address, xclient=True)
        p.backend("pop3_untrusting", cls.dovecot_untrusting.pop3_address, xclient=True)
        p.backend("smtp_untrusting", f"{LOCALHOST}:{untrusting_port}", xclient=True)
        st = {"tls": "starttls"}
        for proto in ("imap", "pop3", "smtp"):
            p.listener(proto, proto, proto)
            p.listener(f"{proto}_x", proto, f"{proto}_x")
        p.listener("imap_st_x", "imap", "imap_x", **st)
        p.listener("pop3_st_x", "pop3", "pop3_x", **st)
        p.listener("submission_x", "smtp", "smtp_x", submission=True, **st)  # require_tls true
        p.listener("smtp25_x", "smtp", "smtp_x", **st)                       # require_tls false
        p.listener("pop3_untrusting", "pop3", "pop3_untrusting")
        p.listener("smtp_untrusting", "smtp", "smtp_untrusting")
        p.start()

    # -- clients ---------------------------------------------------------------------------

    def is_starttls(self, listener: str) -> bool:
        return self.postern.listeners[listener]["tls"] == "starttls"

    def client(self, listener: Optional[str] = None, *, port: Optional[int] = None,
               tls: Optional[bool] = None, source: str = CLIENT_IP) -> LineClient:
        """A client bound to `source`: to a postern listener (TLS at once on an implicit one),
        or to a backend's plaintext `port`."""
        if port is None:
            port = self.postern.port(listener)
            tls = not self.is_starttls(listener) if tls is None else tls
        sock = socket.create_connection((LOCALHOST, port), 10, source_address=(source, 0))
        if tls:
            try:
                sock = no_verify().wrap_socket(sock, server_hostname=SNI)
            except BaseException:
                sock.close()
                raise
        c = LineClient(sock)
        self.addCleanup(c.close)
        return c

    def imap_login(self, c: LineClient, starttls: bool = False, id_fields: str = "") -> None:
        """Greeting, STARTTLS if asked, an ID with these fields if any, LOGIN and LOGOUT."""
        self.assertTrue(c.readline().startswith("* OK"), c.transcript)
        if starttls:
            self.assertTrue(c.imap("s", "STARTTLS")[-1].startswith("s OK"), c.transcript)
            c.starttls(SNI)
        if id_fields:
            self.assertTrue(c.imap("i", f"ID ({id_fields})")[-1].startswith("i OK"), c.transcript)
        self.assertTrue(c.imap("a", f"LOGIN {USER} {PASSWORD}")[-1].startswith("a OK"), c.transcript)
        self.assertTrue(c.imap("z", "LOGOUT")[-1].startswith("z OK"), c.transcript)

    def pop3_greeting(self, c: LineClient, starttls: bool = False) -> str:
        greeting = c.readline()
        self.assertTrue(greeting.startswith("+OK"), c.transcript)
        if starttls:
            c.send("STLS")
            self.assertTrue(c.readline().startswith("+OK"), c.transcript)
            c.starttls(SNI)
        return greeting

    def pop3_login(self, c: LineClient) -> None:
        c.send(f"USER {USER}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send(f"PASS {PASSWORD}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)

    def smtp_hello(self, c: LineClient, ehlo: str, starttls: bool = False) -> str:
        """Greeting and EHLO (then STARTTLS and EHLO again if asked); the last EHLO reply."""
        self.assertTrue(c.smtp_reply()[-1].startswith("220 "), c.transcript)
        reply = c.smtp(f"EHLO {ehlo}")
        self.assertTrue(reply[-1].startswith("250 "), c.transcript)
        if starttls:
            self.assertTrue(c.smtp("STARTTLS")[-1].startswith("220 "), c.transcript)
            c.starttls(SNI)
            reply = c.smtp(f"EHLO {ehlo}")
            self.assertTrue(reply[-1].startswith("250 "), c.transcript)
        return "".join(reply)

    def smtp_send(self, c: LineClient, subject: str) -> Path:
        """One message to test@a.test, QUIT; the delivered file."""
        for command, code in (("MAIL FROM:<sender@c.test>", "250"), ("RCPT TO:<test@a.test>", "250"),
                              ("DATA", "354")):
            self.assertTrue(c.smtp(command)[-1].startswith(code), c.transcript)
        c.sock.sendall(message(subject) + b".\r\n")
        self.assertTrue(c.smtp_reply()[-1].startswith("250 "), c.transcript)
        self.assertTrue(c.smtp("QUIT")[-1].startswith("221 "), c.transcript)
        return self.postfix.wait_for_mail(subject)

    # -- what the backends saw -------------------------------------------------------------

    @staticmethod
    def log_size(dovecot: Dovecot) -> int:
        try:
            return (dovecot.dir / "dovecot.log").stat().st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def log_since(dovecot: Dovecot, mark: int) -> str:
        try:
            with open(dovecot.dir / "dovecot.log", "rb") as f:
                f.seek(mark)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def dovecot_login(self, service: str, mark: int, dovecot: Optional[Dovecot] = None) -> str:
        """The first `<service>-login: ... Login:` line Dovecot wrote after mark (polled)."""
        dovecot = dovecot or self.dovecot
        rx = re.compile(rf"^.*\b{service}-login: Info: Login: .*$", re.M)
        m = wait_until(lambda: rx.search(self.log_since(dovecot, mark)), 10,
                       f"a {service} Login line in {dovecot.dir / 'dovecot.log'}")
        return m.group(0)

    def session(self, client_port: int, listener: str, **expected) -> dict:
        fields = self.postern.session_end(client_port, listener, host=CLIENT_IP)
        for key, value in expected.items():
            self.assertEqual(fields.get(key), value, f"{key}= in session line: {fields['_line']}")
        return fields
