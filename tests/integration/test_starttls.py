"""STARTTLS listeners (`tls = "starttls"`, ports 143/110/25/587) through postern against real
Dovecot and Postfix.

Before TLS postern speaks for itself and no backend is connected (checked with a recording relay
between postern and the backend); after the handshake the backend's own dialogue is relayed with
STARTTLS/STLS/LOGINDISABLED filtered out. Covered here: the pre-TLS dialogues of all three
protocols, real clients (python, curl, swaks, openssl s_client) with the certificate chosen by
SNI, full mail round trips, plaintext delivery on a port-25 listener, refusal of credentials
before TLS, command injection after STARTTLS (the bytes must never reach the backend nor be
answered), limits and bad input before TLS, and failed handshakes after STARTTLS.

The backends advertise STARTTLS/STLS themselves (Dovecot with ssl = yes, Postfix's STARTTLS
port) and Postfix offers AUTH (SASL through Dovecot), so every filter assertion can fail.
"""

import base64
import contextlib
import re
import socket
import ssl
import threading
import time
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, ImapStarttls, IntegrationCase, LineClient,
                     Pki, Pop3Starttls, Postern, Postfix, RecordingRelay, SmtpStarttls, WaitTimeout,
                     free_port, message, run, unique, wait_until)

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


def no_verify() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def is_probe(conn: RecordingRelay.Connection) -> bool:
    """postern's own EHLO probe of the SMTP backend (greeting, EHLO <hostname>, QUIT)."""
    return re.fullmatch(rb"EHLO " + re.escape(HOSTNAME.encode()) + rb"\r\n(QUIT\r\n)?",
                        bytes(conn.to_backend)) is not None


def b64_plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class StartTls(IntegrationCase):
    """One postern with STARTTLS listeners in front of Dovecot and Postfix; *_rec listeners go
    through a RecordingRelay, *_lim listeners have plaintext_timeout = 1s and max_errors = 3."""

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
        time.sleep(0.2)  # a connection postern would open on the last command has been accepted
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

    # -- 1. before TLS: postern's own dialogue, no backend ---------------------------------

    def test_imap_pre_tls_dialogue(self):
        mark = self.relays["imap"].mark()
        c = self.plain("imap_rec")
        port = c.local_port
        greeting = c.readline()
        self.assertRegex(greeting, r"^\* OK \[CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\] ")
        self.assertIn(HOSTNAME, greeting)
        lines = c.imap("a1", "CAPABILITY")
        caps = [l for l in lines if l.startswith("* CAPABILITY ")]
        self.assertEqual(len(caps), 1, lines)
        self.assertEqual(set(caps[0].split()[2:]), {"IMAP4rev1", "STARTTLS", "LOGINDISABLED"}, caps)
        self.assertTrue(lines[-1].startswith("a1 OK"), lines)
        self.assertTrue(c.imap("a2", "NOOP")[-1].startswith("a2 OK"), c.transcript)
        for tag, command in (("a3", f"LOGIN {USER} {PASSWORD}"), ("a4", "AUTHENTICATE PLAIN"),
                             ("a5", f"AUTHENTICATE PLAIN {b64_plain(USER, PASSWORD)}")):
            lines = c.imap(tag, command)
            self.assertEqual(len(lines), 1, lines)  # no "+ " continuation: nothing is read
            self.assertTrue(lines[0].startswith(f"{tag} NO [PRIVACYREQUIRED]"), lines)
        for tag, command in (("a6", "SELECT INBOX"), ("a7", "XYZZY"), ("a8", "ID NIL")):
            lines = c.imap(tag, command)
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].startswith(f"{tag} BAD"), lines)
        lines = c.imap("a9", "LOGOUT")
        self.assertTrue(lines[0].startswith("* BYE"), lines)
        self.assertTrue(lines[-1].startswith("a9 OK"), lines)
        self.assertEqual(c.read_to_eof(), "", "connection closed after LOGOUT")
        c.close()
        self.session(port, "imap_rec", protocol="imap", tls="-", sni="-", end="client_quit")
        self.assert_no_backend_connection("imap", mark)

    def test_pop3_pre_tls_dialogue(self):
        mark = self.relays["pop3"].mark()
        c = self.plain("pop3_rec")
        port = c.local_port
        greeting = c.readline()
        self.assertRegex(greeting, r"^\+OK ")
        self.assertIn(HOSTNAME, greeting)
        self.assertNotRegex(greeting, r"<[^>]+@[^>]+>", "no APOP timestamp: postern cannot do APOP")
        capa = c.pop3_multiline("CAPA")
        self.assertTrue(capa[0].startswith("+OK"), capa)
        names = [l.split()[0].upper() for l in capa[1:-1]]
        self.assertIn("STLS", names)
        self.assertNotIn("USER", names)  # require_tls: no plaintext login offered
        self.assertNotIn("SASL", names)
        for command in (f"USER {USER}", f"PASS {PASSWORD}", "APOP test 0123456789abcdef0123456789abcdef",
                        "AUTH PLAIN", f"AUTH PLAIN {b64_plain(USER, PASSWORD)}"):
            c.send(command)
            reply = c.readline()
            self.assertTrue(reply.startswith("-ERR [AUTH]"), (command, reply))
        for command in ("STAT", "LIST", "RETR 1", "XYZZY"):
            c.send(command)
            reply = c.readline()
            self.assertTrue(reply.startswith("-ERR"), (command, reply))
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        self.assertEqual(c.read_to_eof(), "", "connection closed after QUIT")
        c.close()
        self.session(port, "pop3_rec", protocol="pop3", tls="-", end="client_quit")
        self.assert_no_backend_connection("pop3", mark)

    def test_smtp_submission_pre_tls_dialogue(self):
        mark = self.relays["submission"].mark()
        c = self.plain("submission_rec")
        port = c.local_port
        greeting = c.smtp_reply()
        self.assertEqual(len(greeting), 1, greeting)
        self.assertRegex(greeting[0], r"^220 " + re.escape(HOSTNAME) + r" ")
        ehlo = c.smtp("EHLO client.c.test")
        self.assertTrue(all(l.startswith("250") for l in ehlo), ehlo)
        self.assertRegex(ehlo[0], r"^250-" + re.escape(HOSTNAME))
        keywords = [l[4:].split()[0].upper() for l in ehlo[1:]]
        self.assertIn("STARTTLS", keywords)
        self.assertNotIn("AUTH", keywords, "AUTH advertised before TLS on a require_tls listener")
        self.assertFalse(any(k.startswith("AUTH=") for k in keywords), keywords)
        self.assertRegex(c.smtp("HELO client.c.test")[0], r"^250 ")
        for command, code in (("NOOP", "250"), ("RSET", "250"), ("HELP", "214")):
            reply = c.smtp(command)
            self.assertTrue(reply[-1].startswith(code), (command, reply))
        for command in ("MAIL FROM:<sender@c.test>", f"AUTH PLAIN {b64_plain(USER, PASSWORD)}",
                        "AUTH LOGIN"):
            reply = c.smtp(command)
            self.assertEqual(reply, ["530 5.7.0 Must issue a STARTTLS command first\r\n"], command)
        reply = c.smtp("QUIT")
        self.assertTrue(reply[-1].startswith("221"), reply)
        self.assertEqual(c.read_to_eof(), "", "connection closed after QUIT")
        c.close()
        self.session(port, "submission_rec", protocol="smtp", tls="-", end="client_quit")
        self.assert_no_backend_connection("submission", mark)

    def test_smtp_ehlo_offers_backend_extensions(self):
        # the backend itself offers AUTH and STARTTLS (so the assertions below can fail)
        direct = LineClient(socket.create_connection((LOCALHOST, self.postfix.tls_port), 5))
        direct.smtp_reply()
        backend = [l[4:].split()[0].upper() for l in direct.smtp("EHLO client.c.test")[1:]]
        direct.smtp("QUIT")
        direct.close()
        for want in ("AUTH", "STARTTLS", "SIZE", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
            self.assertIn(want, backend)
        for listener in ("submission", "smtp"):
            with self.subTest(listener=listener):
                ehlo = self.pre_tls_ehlo(listener).splitlines()
                keywords = [l[4:].split()[0].upper() for l in ehlo[1:]]
                for want in ("STARTTLS", "SIZE", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
                    self.assertIn(want, keywords, ehlo)
                self.assertEqual(keywords.count("STARTTLS"), 1, ehlo)
                self.assertTrue(set(keywords) <= set(backend) | {"STARTTLS"},
                                f"extensions the backend does not offer: {set(keywords) - set(backend)}")
                if listener == "submission":
                    self.assertNotIn("AUTH", keywords, ehlo)

    def test_greeting_names_listener_hostname(self):
        for proto, listener_host in (("imap", LIMITS_HOSTNAME), ("pop3", LIMITS_HOSTNAME),
                                     ("smtp", LIMITS_HOSTNAME)):
            with self.subTest(protocol=proto):
                c = self.plain(f"{proto}_lim")
                greeting = c.readline()
                self.assertIn(listener_host, greeting)
                self.assertNotIn(HOSTNAME, greeting)
                c.close()

    # -- 2. real clients through STARTTLS --------------------------------------------------

    def test_openssl_s_client_starttls_serves_sni_certificate(self):
        cases = [("mail.a.test", "a"), ("mail.b.test", "b"), ("x.c.test", "c"), (None, "default")]
        for proto in ("imap", "pop3", "smtp"):
            for sni, want in cases:
                with self.subTest(protocol=proto, sni=sni):
                    mark = self.postern.log_size()
                    args = (["-servername", sni, "-verify_hostname", sni] if sni else ["-noservername"])
                    out = run(["openssl", "s_client", "-connect", f"{LOCALHOST}:{self.postern.port(proto)}",
                               "-starttls", proto, "-CAfile", self.pki.ca, "-verify_return_error", *args],
                              timeout=20)
                    text = out.stdout + out.stderr
                    self.assertEqual(self.pki.identify_pem(out.stdout), want, text)
                    self.assertIn("Verify return code: 0 (ok)", text)
                    addr = re.escape(self.postern.listen_address(proto))
                    m = self.postern.wait_log(rf"^.*\bsession end\b.*\blistener={addr}\s.*$", since=mark)
                    line = m.group(0)
                    self.assertIn(f" sni={sni or '-'} ", line)
                    self.assertIn(f" cert={self.pki.names(want)[0]} ", line)
                    self.assertRegex(line, r" tls=TLSv1\.[23] ")

    def test_python_imaplib_starttls_login_and_fetch(self):
        subject = unique("st-imap")
        self.dovecot.seed(message(subject))
        m = ImapStarttls("mail.a.test", self.postern.port("imap"))
        port = m.sock.getsockname()[1]
        self.assertIn("STARTTLS", m.capabilities)
        self.assertIn("LOGINDISABLED", m.capabilities)
        m.starttls(ssl_context=self.pki.context())  # verifies chain and name mail.a.test
        self.assertEqual(self.served(m.sock), "a")
        version, cipher = m.sock.version(), m.sock.cipher()[0]
        # imaplib asks CAPABILITY again after STARTTLS: the backend's list, filtered
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertEqual(m.login("test@a.test", PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        typ, data = m.search(None, "SUBJECT", subject)
        self.assertEqual(typ, "OK")
        nums = data[0].split()
        self.assertEqual(len(nums), 1, data)
        typ, data = m.fetch(nums[0], "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertIn(f"Subject: {subject}".encode(), data[0][1])
        m.logout()
        fields = self.session(port, "imap", protocol="imap", sni="mail.a.test", cert="mail.a.test",
                              tls=version, cipher=cipher, backend="imap", end="client_quit")
        self.assertGreater(int(fields["bytes_out"]), 100, fields["_line"])

    def test_python_poplib_stls_login_and_retr(self):
        subject = unique("st-pop3")
        self.dovecot.seed(message(subject))
        p = Pop3Starttls("x.c.test", self.postern.port("pop3"))
        port = p.sock.getsockname()[1]
        self.assertIn("STLS", p.capa())
        self.assertTrue(p.stls(context=self.pki.context()).startswith(b"+OK"))
        self.assertEqual(self.served(p.sock), "c")
        capa = p.capa()
        self.assertNotIn("STLS", capa)
        self.assertIn("UIDL", capa)  # Dovecot's list, not postern's pre-TLS one
        self.assertIn("USER", capa)
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        count, _ = p.stat()
        found = any(f"Subject: {subject}".encode() in p.retr(i)[1] for i in range(1, count + 1))
        self.assertTrue(found, f"Subject: {subject} not among {count} messages")
        p.quit()
        self.session(port, "pop3", protocol="pop3", sni="x.c.test", cert="*.c.test", backend="pop3",
                     end="client_quit")

    def test_python_smtplib_starttls_auth_and_send(self):
        subject = unique("st-smtplib")
        s = SmtpStarttls("mail.b.test", self.postern.port("submission"))
        port = s.sock.getsockname()[1]
        s.ehlo()
        self.assertTrue(s.has_extn("starttls"))
        self.assertFalse(s.has_extn("auth"))
        self.assertEqual(s.starttls(context=self.pki.context())[0], 220)
        self.assertEqual(self.served(s.sock), "b")
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        self.assertTrue(s.has_extn("auth"), s.esmtp_features)  # Postfix's own list after TLS
        self.assertEqual(s.login(USER, PASSWORD)[0], 235)
        self.assertEqual(s.sendmail("sender@c.test", ["test@a.test"], message(subject)), {})
        s.quit()
        self.assertIn(f"Subject: {subject}", self.postfix.wait_for_mail(subject).read_text())
        self.session(port, "submission", protocol="smtp", sni="mail.b.test", cert="mail.b.test",
                     backend="smtp", end="client_quit")
        self.assertIn("sasl_username=test", self.postfix.log_text())

    def test_curl_imap_pop3_smtp_ssl_reqd(self):
        subject = unique("st-curl")
        self.dovecot.seed(message(subject))
        port = self.postern.port("imap")
        common = ["--ssl-reqd", "--cacert", self.pki.ca, "-u", f"{USER}:{PASSWORD}"]
        out = self.curl("--resolve", f"mail.a.test:{port}:{LOCALHOST}", "--pinnedpubkey",
                        self.pki.spki_pin("a"), *common,
                        f"imap://mail.a.test:{port}/INBOX?SUBJECT%20{subject}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stderr, r"> \S+ STARTTLS")
        uids = re.findall(r"\* SEARCH ([\d ]+)", out.stdout)
        self.assertTrue(uids and uids[0].split(), out.stdout)
        out = self.curl("--resolve", f"mail.a.test:{port}:{LOCALHOST}", "--pinnedpubkey",
                        self.pki.spki_pin("a"), *common,
                        f"imap://mail.a.test:{port}/INBOX;UID={uids[0].split()[-1]}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"Subject: {subject}", out.stdout)

        pport = self.postern.port("pop3")
        pop = ["--resolve", f"mail.b.test:{pport}:{LOCALHOST}", "--pinnedpubkey", self.pki.spki_pin("b"), *common]
        out = self.curl(*pop, f"pop3://mail.b.test:{pport}/")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("> STLS", out.stderr)
        numbers = re.findall(r"(?m)^(\d+) \d+\s*$", out.stdout)
        self.assertTrue(numbers, out.stdout)
        out = self.curl(*pop, f"pop3://mail.b.test:{pport}/{numbers[-1]}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"Subject: {subject}", out.stdout)

        sport = self.postern.port("submission")
        eml = self.workdir_for_test() / "msg.eml"
        sent = unique("st-curl-smtp")
        eml.write_bytes(message(sent))
        out = self.curl("--resolve", f"x.c.test:{sport}:{LOCALHOST}", "--pinnedpubkey",
                        self.pki.spki_pin("c"), *common, f"smtp://x.c.test:{sport}",
                        "--mail-from", "sender@c.test", "--mail-rcpt", "test@a.test",
                        "--upload-file", eml)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("> STARTTLS", out.stderr)
        self.postfix.wait_for_mail(sent)

    def test_swaks_starttls_submission_and_port25(self):
        for listener, sni, want, auth in (("submission", "mail.b.test", "b", True),
                                          ("smtp", "x.c.test", "c", False)):
            with self.subTest(listener=listener):
                subject = unique(f"st-swaks-{listener}")
                peer = self.workdir_for_test() / f"peer-{listener}.pem"
                argv = ["swaks", "--server", LOCALHOST, "--port", self.postern.port(listener),
                        "--tls", "--tls-sni", sni, "--tls-verify", "--tls-ca-path", self.pki.ca,
                        "--tls-get-peer-cert", peer, "--ehlo", "client.c.test",
                        "--from", "sender@c.test", "--to", "test@a.test",
                        "--header", f"Subject: {subject}", "--timeout", "20"]
                if auth:
                    argv += ["--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD]
                out = run(argv, timeout=40)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn("=== TLS started with cipher", out.stdout)
                self.assertRegex(out.stdout, r"<~  250 2\.0\.0 Ok: queued")
                self.assertEqual(self.pki.identify_pem(peer.read_text()), want)
                self.postfix.wait_for_mail(subject)

    # -- 3. after TLS: the backend's dialogue, filtered; no second STARTTLS -----------------

    def test_imap_after_starttls_backend_capabilities_and_no_second_starttls(self):
        # the backend on its own does advertise STARTTLS
        direct = LineClient(socket.create_connection((LOCALHOST, self.dovecot.imap_port), 5))
        self.assertIn("STARTTLS", direct.readline())
        direct.close()
        c = self.plain("imap")
        c.readline()
        self.assertTrue(c.imap("a1", "STARTTLS")[-1].startswith("a1 OK"), c.transcript)
        c.starttls("mail.b.test")
        self.assertEqual(self.served(c.sock), "b")
        lines = c.imap("a2", "CAPABILITY")
        self.assertFalse(any(l.startswith("* OK") for l in lines), f"a greeting after STARTTLS: {lines}")
        caps = [l for l in lines if l.startswith("* CAPABILITY ")]
        self.assertEqual(len(caps), 1, lines)
        self.assertIn("AUTH=PLAIN", caps[0])  # Dovecot's list
        self.assertNotIn("STARTTLS", caps[0])
        self.assertNotIn("LOGINDISABLED", caps[0])
        lines = c.imap("a3", "STARTTLS")
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("a3 BAD"), lines)
        self.assertTrue(c.imap("a4", "NOOP")[-1].startswith("a4 OK"), c.transcript)  # same TLS session
        self.assertTrue(c.imap("a5", f"LOGIN {USER} {PASSWORD}")[-1].startswith("a5 OK"), c.transcript)
        self.assertTrue(c.imap("a7", "STARTTLS")[-1].startswith("a7 BAD"), c.transcript)
        self.assertTrue(c.imap("a8", "LOGOUT")[-1].startswith("a8 OK"), c.transcript)
        c.close()

    def test_pop3_after_stls_backend_capa_and_no_second_stls(self):
        c = self.plain("pop3")
        c.readline()
        c.send("STLS")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.starttls("mail.a.test")
        self.assertEqual(self.served(c.sock), "a")
        capa = c.pop3_multiline("CAPA")
        self.assertTrue(capa[0].startswith("+OK"), capa)
        self.assertFalse(any(l.startswith(("+OK", "-ERR")) for l in capa[1:]),
                         f"a greeting after STLS: {capa}")
        self.assertIn("UIDL\r\n", capa)
        self.assertFalse(any(l.upper().startswith("STLS") for l in capa), capa)
        c.send("STLS")
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
        c.send(f"USER {USER}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send(f"PASS {PASSWORD}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send("STLS")
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.close()

    def test_smtp_after_starttls_backend_ehlo_and_no_second_starttls(self):
        mark = self.relays["submission"].mark()
        c = self.plain("submission_rec")
        c.smtp_reply()
        c.smtp("EHLO client.c.test")
        self.assertEqual(c.smtp("STARTTLS"), ["220 2.0.0 Ready to start TLS\r\n"])
        c.starttls("x.c.test")
        self.assertEqual(self.served(c.sock), "c")
        ehlo = c.smtp("EHLO client.c.test")  # the first reply after TLS: no second banner
        self.assertRegex(ehlo[0], r"^250-" + re.escape(BACKEND_SMTP_NAME), ehlo)
        keywords = [l[4:].split()[0].upper() for l in ehlo[1:]]
        self.assertIn("AUTH", keywords)
        self.assertNotIn("STARTTLS", keywords)
        reply = c.smtp("STARTTLS")
        self.assertRegex(reply[-1], r"^5\d\d ", reply)
        self.assertTrue(c.smtp("NOOP")[-1].startswith("250"), c.transcript)
        self.assertTrue(c.smtp(f"AUTH PLAIN {b64_plain(USER, PASSWORD)}")[-1].startswith("235"), c.transcript)
        # once authenticated (postern relays as-is from here on) the same rules hold
        with self.subTest("EHLO after AUTH"):
            ehlo = c.smtp("EHLO client.c.test")
            self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
        with self.subTest("STARTTLS after AUTH"):
            reply = c.smtp("STARTTLS")
            self.assertRegex(reply[-1], r"^5\d\d ", f"STARTTLS after AUTH: {reply}")
        if not reply[-1].startswith("220"):
            self.assertTrue(c.smtp("QUIT")[-1].startswith("221"), c.transcript)
        c.close()
        with self.subTest("backend asked for STARTTLS"):
            sent = b"".join(bytes(x.to_backend) for x in self.backend_sessions("submission", mark))
            self.assertNotIn(b"STARTTLS", sent.upper(), "the backend was asked for STARTTLS")

    def test_smtp_port25_after_starttls_filtered_across_transactions(self):
        subject = unique("st-25-tls")
        mark = self.relays["smtp"].mark()
        c = self.plain("smtp_rec")
        port = c.local_port
        c.smtp_reply()
        self.assertEqual(c.smtp("STARTTLS"), ["220 2.0.0 Ready to start TLS\r\n"])  # EHLO is optional
        c.starttls("mail.a.test")
        ehlo = c.smtp("EHLO client.c.test")
        self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("DATA")[-1], r"^354 ")
        c.sock.sendall(message(subject) + b".\r\n")
        self.assertRegex(c.smtp_reply()[-1], r"^250 ")
        with self.subTest("EHLO after a transaction"):
            ehlo = c.smtp("EHLO client.c.test")
            self.assertTrue(ehlo[-1].startswith("250 "), ehlo)
            self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
        reply = c.smtp("STARTTLS")
        with self.subTest("STARTTLS after a transaction"):
            self.assertRegex(reply[-1], r"^5\d\d ", reply)
        if not reply[-1].startswith("220"):
            self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        c.close()
        self.postfix.wait_for_mail(subject)
        self.session(port, "smtp_rec", sni="mail.a.test", cert="mail.a.test")
        sent = b"".join(bytes(x.to_backend) for x in self.backend_sessions("smtp", mark))
        self.assertNotIn(b"STARTTLS", sent.upper(), "the backend was asked for STARTTLS")

    # -- 4. port 25 without STARTTLS: plaintext delivery -----------------------------------

    def test_port25_plaintext_delivery_with_ehlo(self):
        subject = unique("st-plain-ehlo")
        mark = self.relays["smtp"].mark()
        s = SmtpStarttls(None, self.postern.port("smtp_rec"), local_hostname="client.plain.test")
        port = s.sock.getsockname()[1]
        s.ehlo()
        self.assertTrue(s.has_extn("starttls"))
        self.assertEqual(s.sendmail("sender@c.test", ["test@a.test"], message(subject)), {})
        s.quit()
        self.postfix.wait_for_mail(subject)
        self.session(port, "smtp_rec", protocol="smtp", tls="-", sni="-", backend="smtp_rec",
                     end="client_quit")
        conns = self.backend_sessions("smtp", mark)
        self.assertEqual(len(conns), 1, [bytes(c.to_backend) for c in conns])
        sent = bytes(conns[0].to_backend)
        # smtplib writes "ehlo"/"mail" in lower case: replayed as the client sent it
        self.assertTrue(sent.startswith(b"ehlo client.plain.test\r\n"), sent[:200])
        self.assertIn(b"mail FROM:<sender@c.test>", sent)

    def test_port25_plaintext_delivery_with_helo(self):
        subject = unique("st-plain-helo")
        mark = self.relays["smtp"].mark()
        c = self.plain("smtp_rec")
        port = c.local_port
        self.assertTrue(c.smtp_reply()[0].startswith("220 "))
        self.assertRegex(c.smtp("HELO old.client.test")[-1], r"^250 ")
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("DATA")[-1], r"^354 ")
        c.sock.sendall(message(subject) + b".\r\n")
        self.assertRegex(c.smtp_reply()[-1], r"^250 ")
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        c.close()
        self.postfix.wait_for_mail(subject)
        self.session(port, "smtp_rec", tls="-", end="client_quit")
        conns = self.backend_sessions("smtp", mark)
        self.assertEqual(len(conns), 1)
        self.assertTrue(bytes(conns[0].to_backend).startswith(b"HELO old.client.test\r\n"),
                        bytes(conns[0].to_backend)[:200])

    # -- 5. command injection: bytes pipelined after STARTTLS are discarded ----------------

    def test_imap_injection_after_starttls_is_discarded(self):
        relay_mark, log_mark = self.relays["imap"].mark(), self.dovecot_log_size()
        s = self.raw("imap_rec")
        port = s.getsockname()[1]
        recv_until(s, rb"^\* OK .*\r\n", "the greeting")
        s.sendall(b"a STARTTLS\r\nb LOGIN test secret\r\n")  # one segment
        reply = recv_until(s, rb"^a [A-Z]+ .*\r\n", "the STARTTLS reply")
        self.assertRegex(reply, rb"\Aa OK [^\r\n]*\r\n\Z", "exactly the STARTTLS reply")
        tls = no_verify().wrap_socket(s, server_hostname="mail.a.test")
        c = LineClient(tls)
        lines = c.imap("c", "NOOP")
        lines += c.imap("d", "LOGOUT")
        lines += c.read_to_eof().splitlines(keepends=True)
        c.close()
        self.assertFalse(any(l.startswith("b ") for l in lines), f"the injected LOGIN was answered: {lines}")
        self.assertFalse(any("Logged in" in l or "LOGIN" in l for l in lines), lines)
        self.session(port, "imap_rec", sni="mail.a.test", end="client_quit")
        conns = self.backend_sessions("imap", relay_mark)
        self.assertEqual(len(conns), 1)
        sent = bytes(conns[0].to_backend)
        self.assertIn(b"c NOOP\r\n", sent)  # the relay did see this session's commands
        self.assertNotIn(b"LOGIN", sent)
        self.assertNotIn(b"secret", sent)
        self.assertNotIn("Login: user=<", self.dovecot_log_since(log_mark))
        # control: the same login, sent properly after TLS, does reach Dovecot and its log
        m = ImapStarttls("mail.a.test", self.postern.port("imap_rec"))
        m.starttls(ssl_context=no_verify())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        wait_until(lambda: "Login: user=<test>" in self.dovecot_log_since(log_mark), 10,
                   "Dovecot logging the control login")

    def test_pop3_injection_after_stls_is_discarded(self):
        relay_mark, log_mark = self.relays["pop3"].mark(), self.dovecot_log_size()
        s = self.raw("pop3_rec")
        port = s.getsockname()[1]
        recv_until(s, rb"^\+OK .*\r\n", "the greeting")
        s.sendall(b"STLS\r\nUSER test\r\nPASS secret\r\n")
        reply = recv_until(s, rb"^[+-].*\r\n", "the STLS reply")
        self.assertRegex(reply, rb"\A\+OK [^\r\n]*\r\n\Z", "exactly the STLS reply")
        c = LineClient(no_verify().wrap_socket(s, server_hostname="mail.a.test"))
        capa = c.pop3_multiline("CAPA")
        c.send("QUIT")
        quit_reply = c.readline()
        rest = c.read_to_eof()
        c.close()
        self.assertTrue(capa[0].startswith("+OK"), capa)
        self.assertEqual(capa[-1], ".\r\n", capa)
        self.assertFalse(any(l.startswith(("+OK", "-ERR")) for l in capa[1:]),
                         f"replies to the injected USER/PASS: {capa}")
        self.assertTrue(quit_reply.startswith("+OK"), quit_reply)
        self.assertEqual(rest, "", "nothing after the QUIT reply")
        self.session(port, "pop3_rec", sni="mail.a.test", end="client_quit")
        conns = self.backend_sessions("pop3", relay_mark)
        self.assertEqual(len(conns), 1)
        sent = bytes(conns[0].to_backend)
        self.assertIn(b"CAPA\r\n", sent)
        self.assertNotIn(b"USER", sent)
        self.assertNotIn(b"PASS", sent)
        self.assertNotIn("Login: user=<", self.dovecot_log_since(log_mark))

    def smtp_injection(self, listener: str, relay: str, injected: bytes, forbidden: list[bytes]):
        mark = self.relays[relay].mark()
        s = self.raw(listener)
        port = s.getsockname()[1]
        recv_until(s, rb"^220 .*\r\n", "the greeting")
        s.sendall(b"EHLO attacker.c.test\r\n")
        recv_until(s, rb"^250 .*\r\n", "the EHLO reply")
        s.sendall(b"STARTTLS\r\n" + injected)
        reply = recv_until(s, rb"^\d\d\d .*\r\n", "the STARTTLS reply")
        self.assertEqual(reply, b"220 2.0.0 Ready to start TLS\r\n")
        c = LineClient(no_verify().wrap_socket(s, server_hostname="mail.b.test"))
        ehlo = c.smtp("EHLO client.c.test")
        quit_reply = c.smtp("QUIT")
        rest = c.read_to_eof()
        c.close()
        self.assertRegex(ehlo[0], r"^250-" + re.escape(BACKEND_SMTP_NAME),
                         f"the first reply after TLS is not the EHLO reply: {ehlo}")
        self.assertTrue(quit_reply[-1].startswith("221"), quit_reply)
        self.assertEqual(rest, "", "nothing after the QUIT reply")
        self.session(port, listener, sni="mail.b.test", end="client_quit")
        conns = self.backend_sessions(relay, mark)
        self.assertEqual(len(conns), 1, [bytes(x.to_backend) for x in conns])
        sent = bytes(conns[0].to_backend)
        self.assertIn(b"EHLO client.c.test\r\n", sent)
        self.assertNotIn(b"attacker", sent, "pre-TLS knowledge (EHLO name) reached the backend")
        for word in forbidden:
            self.assertNotIn(word, sent)

    def test_smtp_injection_after_starttls_is_discarded_port25(self):
        self.smtp_injection("smtp_rec", "smtp", b"MAIL FROM:<x@evil.test>\r\n", [b"MAIL", b"evil"])

    def test_smtp_injection_after_starttls_is_discarded_submission(self):
        self.smtp_injection("submission_rec", "submission", b"RSET\r\n", [b"RSET"])

    # -- 6. limits and bad input before TLS ------------------------------------------------

    ERROR_REPLY = {"imap": r"^\* (BAD|BYE) ", "pop3": r"^-ERR ", "smtp": r"^(5\d\d|421) "}
    CLOSE_REPLY = {"imap": r"(?m)^\* BYE ", "pop3": r"(?m)^-ERR ", "smtp": r"(?m)^421 "}

    def bad_input(self, proto: str, payload: bytes, end: str, expect_reply: bool = True):
        """Sends payload after the greeting of the *_lim listener; the reply must be the
        protocol's error, then the connection must close well before plaintext_timeout."""
        c = self.plain(f"{proto}_lim", timeout=5)
        port = c.local_port
        c.readline()
        started = time.monotonic()
        c.sock.sendall(payload)
        text = c.read_to_eof()
        elapsed = time.monotonic() - started
        c.close()
        if expect_reply:
            self.assertRegex(text, self.ERROR_REPLY[proto], c.transcript)
        self.assertNotRegex(text, r"(?m)^(\S+ OK|\+OK|2\d\d)", c.transcript)
        self.session(port, f"{proto}_lim", protocol=proto, tls="-", end=end)
        self.assertLess(elapsed, 0.9, "closed only by plaintext_timeout")

    def test_line_too_long_before_tls(self):
        m = self.imap_bystander()
        for proto, prefix in (("imap", b"a1 NOOP "), ("pop3", b"NOOP "), ("smtp", b"NOOP ")):
            with self.subTest(protocol=proto, crlf=True):
                self.bad_input(proto, prefix + b"x" * 5000 + b"\r\n", "line_too_long")
            with self.subTest(protocol=proto, crlf=False):
                self.bad_input(proto, prefix + b"x" * 5000, "line_too_long")
        self.assert_bystander_works(m)

    def test_long_but_allowed_line_is_an_ordinary_error(self):
        for proto, line in (("imap", b"a1 XYZZY "), ("pop3", b"XYZZY "), ("smtp", b"XYZZY ")):
            with self.subTest(protocol=proto):
                c = self.plain(f"{proto}_lim", timeout=5)
                c.readline()
                c.sock.sendall(line + b"x" * (4000 - len(line)) + b"\r\n")  # under 4 KiB
                reply = c.readline()
                self.assertRegex(reply, {"imap": r"^a1 BAD ", "pop3": r"^-ERR ", "smtp": r"^5\d\d "}[proto])
                noop = {"imap": "a2 NOOP", "pop3": "NOOP", "smtp": "NOOP"}[proto]
                if proto == "pop3":  # no NOOP before login in POP3: CAPA proves the session lives
                    self.assertTrue(c.pop3_multiline("CAPA")[0].startswith("+OK"), c.transcript)
                else:
                    c.send(noop)
                    self.assertRegex(c.readline(), r"^(a2 OK|250)", c.transcript)
                c.close()

    def test_nul_byte_before_tls(self):
        m = self.imap_bystander()
        for proto, payload in (("imap", b"a1 NO\x00OP\r\n"), ("pop3", b"CA\x00PA\r\n"),
                               ("smtp", b"NO\x00OP\r\n")):
            with self.subTest(protocol=proto):
                self.bad_input(proto, payload, "protocol_error")
        self.assert_bystander_works(m)

    def test_non_ascii_junk_before_tls(self):
        m = self.imap_bystander()
        junk = b"\x80\x81\xfe\xff \xc3\xa9\xe2\x82\xac junk\r\n"
        # in the verb (IMAP: the word after the tag); arguments may be UTF-8 (RFC 6531, 9051)
        for proto, payload in (("imap", junk), ("imap", b"a1 " + junk), ("pop3", junk),
                               ("smtp", junk)):
            with self.subTest(protocol=proto, payload=payload[:12]):
                self.bad_input(proto, payload, "protocol_error")
        self.assert_bystander_works(m)

    def test_tls_client_hello_on_plaintext_port(self):
        """A client configured for implicit TLS talks to the STARTTLS port."""
        m = self.imap_bystander()
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                s = self.raw(f"{proto}_lim")
                port = s.getsockname()[1]
                with self.assertRaises((ssl.SSLError, OSError)):
                    no_verify().wrap_socket(s, server_hostname="mail.a.test")
                fields = self.postern.session_end(port, f"{proto}_lim")
                self.assertEqual(fields.get("end"), "protocol_error", fields["_line"])
        self.assert_bystander_works(m)

    def test_too_many_errors_in_a_row(self):
        m = self.imap_bystander()
        bad = {"imap": lambda i: f"e{i} XYZZY", "pop3": lambda i: "XYZZY", "smtp": lambda i: "XYZZY"}
        good = {"imap": "g NOOP", "pop3": "CAPA", "smtp": "NOOP"}
        bad_reply = {"imap": r"^e\d+ BAD ", "pop3": r"^-ERR ", "smtp": r"^5\d\d "}
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                c = self.plain(f"{proto}_lim", timeout=5)
                port = c.local_port
                c.readline()
                n = 0
                for _ in range(2):  # MAX_ERRORS - 1 errors, then a good command: counter reset
                    for _ in range(MAX_ERRORS - 1):
                        n += 1
                        c.send(bad[proto](n))
                        self.assertRegex(c.readline(), bad_reply[proto], c.transcript)
                    if proto == "pop3":
                        self.assertTrue(c.pop3_multiline(good[proto])[0].startswith("+OK"), c.transcript)
                    else:
                        c.send(good[proto])
                        self.assertRegex(c.readline(), r"^(g OK|250)", c.transcript)
                for _ in range(MAX_ERRORS):
                    n += 1
                    c.send(bad[proto](n))
                text = c.read_to_eof()
                c.close()
                self.assertRegex(text, self.CLOSE_REPLY[proto], c.transcript)
                self.session(port, f"{proto}_lim", protocol=proto, end="too_many_errors")
        self.assert_bystander_works(m)

    def test_silent_client_closed_after_plaintext_timeout(self):
        silent, ports = {}, {}
        for proto in ("imap", "pop3", "smtp"):
            c = self.plain(f"{proto}_lim", timeout=8)
            ports[proto] = c.local_port
            c.readline()
            silent[proto] = c
        started = time.monotonic()
        results = {}

        def wait_close(proto, c):
            results[proto] = (c.read_to_eof(), time.monotonic() - started)
        threads = [threading.Thread(target=wait_close, args=item) for item in silent.items()]
        for t in threads:
            t.start()
        # meanwhile a second client on the same 1-second listener completes a whole session
        m = ImapStarttls("mail.a.test", self.postern.port("imap_lim"))
        m.starttls(ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        for t in threads:
            t.join(10)
        for proto, c in silent.items():
            with self.subTest(protocol=proto):
                text, elapsed = results[proto]
                self.assertRegex(text, self.CLOSE_REPLY[proto], c.transcript)
                self.assertGreater(elapsed, 0.7, "closed before plaintext_timeout = 1s")
                self.assertLess(elapsed, 4.0, "plaintext_timeout = 1s not applied")
                c.close()
                self.session(ports[proto], f"{proto}_lim", protocol=proto, tls="-", end="timeout")

    def test_talking_client_is_not_timed_out(self):
        c = self.plain("imap_lim", timeout=5)
        c.readline()
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 2.2:  # plaintext_timeout is 1s of silence
            i += 1
            self.assertTrue(c.imap(f"n{i}", "NOOP")[-1].startswith(f"n{i} OK"), c.transcript)
            time.sleep(0.4)
        self.assertTrue(c.imap("z", "LOGOUT")[-1].startswith("z OK"), c.transcript)
        c.close()

    # -- 7. failed handshakes after STARTTLS -----------------------------------------------

    def starttls_then(self, proto: str, listener: str):
        """Plain client that has asked for STARTTLS and got the go-ahead."""
        c = self.plain(listener)
        if proto == "imap":
            c.readline()
            self.assertTrue(c.imap("a", "STARTTLS")[-1].startswith("a OK"), c.transcript)
        elif proto == "pop3":
            c.readline()
            c.send("STLS")
            self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        else:
            c.smtp_reply()
            c.smtp("EHLO client.c.test")
            self.assertEqual(c.smtp("STARTTLS"), ["220 2.0.0 Ready to start TLS\r\n"])
        return c

    def test_plaintext_after_starttls_fails_the_handshake(self):
        """A client that goes on in plaintext after the go-ahead (the other injection shape:
        the command in a later packet) is not answered; the handshake fails and is logged."""
        mark = {r: self.relays[r].mark() for r in ("imap", "pop3", "smtp")}
        for proto, line in (("imap", b"b LOGIN test secret\r\n"), ("pop3", b"USER test\r\n"),
                            ("smtp", b"MAIL FROM:<x@evil.test>\r\n")):
            with self.subTest(protocol=proto):
                c = self.starttls_then(proto, f"{proto}_rec")
                port = c.local_port
                c.sock.sendall(line)
                data = b""
                try:
                    while True:
                        chunk = c.sock.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except (ConnectionResetError, socket.timeout):
                    pass
                c.close()
                self.assertTrue(data == b"" or data[0] == 0x15, f"not just a TLS alert: {data[:100]!r}")
                fields = self.postern.session_end(port, f"{proto}_rec")
                self.assertEqual(fields.get("end"), "tls_failed", fields["_line"])
                self.assertRegex(fields.get("detail", ""), r"(?i)wrong version|unknown protocol|"
                                 r"packet length|http request|record|ssl", fields["_line"])
        for relay, since in mark.items():
            self.assert_no_backend_connection(relay, since)

    def test_tls_version_too_old_after_starttls(self):
        ctx = no_verify()
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            self.skipTest("this OpenSSL cannot offer TLS 1.1")
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                c = self.starttls_then(proto, proto)
                port = c.local_port
                with self.assertRaises((ssl.SSLError, OSError)):
                    ctx.wrap_socket(c.sock, server_hostname="mail.a.test")
                c.close()
                fields = self.postern.session_end(port, proto)
                self.assertEqual(fields.get("end"), "tls_failed", fields["_line"])
                self.assertIn("unsupported protocol", fields.get("detail", ""), fields["_line"])


if __name__ == "__main__":
    unittest.main()
