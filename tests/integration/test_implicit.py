"""Implicit TLS (993/995/465-style) through postern against real Dovecot and Postfix.

Covers the foundation acceptance list: certificate selection by SNI (checked on the served
certificate's fingerprint, with python, curl, openssl s_client and swaks; an RSA and an ECDSA
certificate for one name: each client gets the one it can use), IMAP/POP3/SMTP round
trips into real mailboxes, capability filtering (against backends that DO advertise STARTTLS,
STLS and LOGINDISABLED), STARTTLS refused on implicit listeners, unreachable backends, junk and
silent clients, and the one-line session log.
"""

import re
import socket
import ssl
import time
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, ImapSni, IntegrationCase, LineClient,
                     Pki, Pop3Sni, Postern, Postfix, SmtpSni, free_port, message, parse_fields, run,
                     tls_connect, unique)

GREETING = {"imap": "* OK", "pop3": "+OK", "smtp": "220 "}

# SNI sent -> short name of the certificate that must be served (Pki.CERTS)
SNI_CASES = [
    ("mail.a.test", "a"),
    ("mail.b.test", "b"),
    ("x.c.test", "c"),           # wildcard *.c.test covers exactly one label
    ("a.b.c.test", "default"),   # two labels: not covered by *.c.test
    ("c.test", "default"),       # the bare parent: not covered either
    ("mail.unknown.test", "default"),
    (None, "default"),           # no SNI at all
]


def first_dns_name(pki: Pki, short: str) -> str:
    return pki.names(short)[0]


class ImplicitTls(IntegrationCase):
    """One postern in front of Dovecot (plain), Dovecot (advertising STARTTLS), Postfix."""

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        # an RSA and an ECDSA certificate for one name (test_ecdsa_to_clients_that_accept_it_...)
        cls.pki.add("r_rsa", ["mail.r.test"], 40, key="rsa")
        cls.pki.add("r_ec", ["mail.r.test"], 40)
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        # reached on 127.0.0.2 from postern's 127.0.0.1: not "secured" -> LOGINDISABLED too
        cls.dovecot_st = cls.own(Dovecot(cls.tmp / "dovecot-starttls", listen="127.0.0.2",
                                         starttls=True, pki=cls.pki)).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix", pki=cls.pki)).start()
        # nothing listens there (the port was free a moment ago)
        cls.nowhere = f"{LOCALHOST}:{free_port()}"
        # accepts no connection: its one-slot accept queue is kept full, further SYNs are dropped
        cls.blackhole = socket.socket()
        cls.blackhole.bind((LOCALHOST, 0))
        cls.blackhole.listen(0)
        cls.addClassCleanup(cls.blackhole.close)
        cls.blackhole_filler = socket.create_connection(cls.blackhole.getsockname(), 5)
        cls.addClassCleanup(cls.blackhole_filler.close)

        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.certificates += ["r_rsa", "r_ec"]
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        p.backend("imap_st", cls.dovecot_st.imap_address)
        p.backend("pop3_st", cls.dovecot_st.pop3_address)
        p.backend("smtp_st", cls.postfix.tls_address)
        p.backend("nowhere", cls.nowhere)
        p.backend("blackhole", "%s:%d" % cls.blackhole.getsockname(), connect_timeout="1s")
        for proto in ("imap", "pop3", "smtp"):
            p.listener(proto, proto, proto)
            p.listener(f"{proto}_st", proto, f"{proto}_st")
            p.listener(f"{proto}_dead", proto, "nowhere")
        p.listener("imap_blackhole", "imap", "blackhole")
        p.listener("imap6", "imap", "imap", host="::1")
        p.start()

    # -- helpers ---------------------------------------------------------------------------

    def open(self, listener: str, sni, context=None) -> LineClient:
        return LineClient(tls_connect(self.postern.port(listener), sni, context=context))

    def greet(self, listener: str, sni):
        """TLS to a listener; returns (client, short name of the served cert, greeting)."""
        c = self.open(listener, sni)
        served = self.pki.identify(c.sock.getpeercert(binary_form=True))
        greeting = c.readline() if not listener.startswith("smtp") else "".join(c.smtp_reply())
        return c, served, greeting

    def assert_session(self, client_port: int, listener: str, **expected) -> dict:
        fields = self.postern.session_end(client_port, listener)
        for key, value in expected.items():
            self.assertEqual(fields.get(key), value, f"{key}= in session line: {fields['_line']}")
        return fields

    def imap_works(self, listener: str = "imap", sni: str = "mail.a.test") -> None:
        """A complete, verified IMAP login on a listener (proves postern still serves)."""
        m = ImapSni(sni, self.postern.port(listener), ssl_context=self.pki.context())
        try:
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
        finally:
            m.logout()

    def curl(self, *args, timeout=30):
        return run(["curl", "-sS", "-v", "--max-time", "20", *args], timeout=timeout)

    # -- 1. certificate selection by SNI -----------------------------------------------------

    def test_sni_selects_certificate_on_every_protocol(self):
        for proto in ("imap", "pop3", "smtp"):
            for sni, want in SNI_CASES:
                with self.subTest(protocol=proto, sni=sni):
                    c, served, greeting = self.greet(proto, sni)
                    port = c.local_port
                    self.assertEqual(served, want, f"certificate served for SNI {sni!r}")
                    self.assertTrue(greeting.startswith(GREETING[proto]), greeting)
                    c.close()
                    self.assert_session(port, proto, protocol=proto, sni=sni or "-",
                                        cert=first_dns_name(self.pki, want),
                                        backend=proto, end="client_closed")

    def test_ipv6_listener(self):
        c = LineClient(tls_connect(self.postern.port("imap6"), "mail.b.test", host="::1"))
        port = c.local_port
        self.assertEqual(self.pki.identify(c.sock.getpeercert(binary_form=True)), "b")
        self.assertTrue(c.readline().startswith("* OK"))
        self.assertTrue(c.imap("a1", "LOGOUT")[-1].startswith("a1 OK"))
        c.close()
        fields = self.postern.session_end(port, "imap6", host="::1")
        self.assertEqual(fields.get("listener"), self.postern.listen_address("imap6"), fields["_line"])
        self.assertEqual(fields.get("cert"), "mail.b.test", fields["_line"])

    def test_tls12_client(self):
        ctx = self.pki.context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                c = LineClient(tls_connect(self.postern.port(proto), "mail.a.test", context=ctx))
                port = c.local_port
                self.assertEqual(c.sock.version(), "TLSv1.2")
                cipher = c.sock.cipher()[0]
                self.assertEqual(self.pki.identify(c.sock.getpeercert(binary_form=True)), "a")
                greeting = c.readline()
                self.assertTrue(greeting.startswith(GREETING[proto]), greeting)
                c.close()
                self.assert_session(port, proto, tls="TLSv1.2", cipher=cipher, sni="mail.a.test",
                                    cert="mail.a.test")

    def test_served_certificate_verifies_with_python_clients(self):
        ctx = self.pki.context(verify=True)  # chain + host name checked against the SNI
        for sni in ("mail.a.test", "mail.b.test", "x.c.test"):
            with self.subTest(sni=sni):
                m = ImapSni(sni, self.postern.port("imap"), ssl_context=ctx)
                m.logout()
                p = Pop3Sni(sni, self.postern.port("pop3"), context=ctx)
                p.quit()
                s = SmtpSni(sni, self.postern.port("smtp"), context=ctx)
                s.quit()
        # the default certificate does not cover a.b.c.test: a verifying client must refuse it
        with self.assertRaises(ssl.SSLCertVerificationError):
            ImapSni("a.b.c.test", self.postern.port("imap"), ssl_context=ctx).logout()

    def s_client(self, listener: str, *args) -> tuple[str, str]:
        out = run(["openssl", "s_client", "-connect", f"{LOCALHOST}:{self.postern.port(listener)}",
                   "-CAfile", self.pki.ca, *args], timeout=20)
        return self.pki.identify_pem(out.stdout), out.stdout + out.stderr

    def session_for_listener(self, listener: str, since: int) -> dict:
        addr = re.escape(self.postern.listen_address(listener))
        m = self.postern.wait_log(rf"^.*\bsession end\b.*\blistener={addr}(?:\s.*)?$", since=since)
        return parse_fields(m.group(0))

    def test_sni_case_and_trailing_dot_with_openssl(self):
        # openssl s_client sends the name byte for byte (test_fixtures checks that)
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                mark = self.postern.log_size()
                served, out = self.s_client(proto, "-servername", "MAIL.A.TEST.")
                self.assertEqual(served, "a", out)
                fields = self.session_for_listener(proto, mark)
                self.assertEqual(fields.get("cert"), "mail.a.test", fields["_line"])
                self.assertEqual(fields.get("sni", "").lower().rstrip("."), "mail.a.test", fields["_line"])

    def test_ip_literal_sni_and_no_sni_get_default_with_openssl(self):
        for proto in ("imap", "pop3", "smtp"):
            for args in (["-servername", "127.0.0.1"], ["-noservername"]):
                with self.subTest(protocol=proto, args=args):
                    mark = self.postern.log_size()
                    served, out = self.s_client(proto, *args)
                    self.assertEqual(served, "default", out)
                    self.assertIn("Verify return code: 0 (ok)", out)  # chain is fine, name unchecked
                    fields = self.session_for_listener(proto, mark)
                    self.assertEqual(fields.get("cert"), "mail.default", fields["_line"])

    def test_openssl_verifies_served_names(self):
        for proto in ("imap", "pop3", "smtp"):
            for sni, want in (("mail.b.test", "b"), ("x.c.test", "c")):
                with self.subTest(protocol=proto, sni=sni):
                    served, out = self.s_client(proto, "-servername", sni, "-verify_hostname", sni,
                                                "-verify_return_error")
                    self.assertEqual(served, want, out)
                    self.assertIn("Verify return code: 0 (ok)", out)

    def test_ecdsa_to_clients_that_accept_it_rsa_to_others(self):
        port = self.postern.port("imap")
        base = ["openssl", "s_client", "-connect", f"{LOCALHOST}:{port}", "-servername",
                "mail.r.test", "-showcerts"]
        ecdsa = run(base + ["-sigalgs", "ECDSA+SHA256"], input=b"")
        self.assertEqual(self.pki.identify_pem(ecdsa.stdout), "r_ec", ecdsa.stderr)
        rsa = run(base + ["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"], input=b"")
        self.assertEqual(self.pki.identify_pem(rsa.stdout), "r_rsa", rsa.stderr)
        tls12_rsa = run(base + ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], input=b"")
        self.assertEqual(self.pki.identify_pem(tls12_rsa.stdout), "r_rsa", tls12_rsa.stderr)
        tls12_ec = run(base + ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], input=b"")
        self.assertEqual(self.pki.identify_pem(tls12_ec.stdout), "r_ec", tls12_ec.stderr)

    def test_curl_imaps_pop3s_wildcard_and_refusal(self):
        port = self.postern.port("imap")
        subject = unique("curl-imaps")
        self.dovecot.seed(message(subject))
        # search, then fetch by UID, with verification + the exact public key pinned
        out = self.curl("--resolve", f"mail.a.test:{port}:{LOCALHOST}", "--cacert", self.pki.ca,
                        "--pinnedpubkey", self.pki.spki_pin("a"), "-u", f"{USER}:{PASSWORD}",
                        f"imaps://mail.a.test:{port}/INBOX?SUBJECT%20{subject}")
        self.assertEqual(out.returncode, 0, out.stderr)
        uids = re.findall(r"\* SEARCH ([\d ]+)", out.stdout)
        self.assertTrue(uids and uids[0].split(), out.stdout)
        uid = uids[0].split()[-1]
        out = self.curl("--resolve", f"mail.a.test:{port}:{LOCALHOST}", "--cacert", self.pki.ca,
                        "--pinnedpubkey", self.pki.spki_pin("a"), "-u", f"{USER}:{PASSWORD}",
                        f"imaps://mail.a.test:{port}/INBOX;UID={uid}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"Subject: {subject}", out.stdout)

        pport = self.postern.port("pop3")
        out = self.curl("--resolve", f"mail.b.test:{pport}:{LOCALHOST}", "--cacert", self.pki.ca,
                        "--pinnedpubkey", self.pki.spki_pin("b"), "-u", f"{USER}:{PASSWORD}",
                        f"pop3s://mail.b.test:{pport}/")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"(?m)^1 \d+")

        out = self.curl("--resolve", f"x.c.test:{port}:{LOCALHOST}", "--cacert", self.pki.ca,
                        "--pinnedpubkey", self.pki.spki_pin("c"), "-u", f"{USER}:{PASSWORD}",
                        f"imaps://x.c.test:{port}/", "-X", "CAPABILITY")
        self.assertEqual(out.returncode, 0, out.stderr)

        # default certificate for a.b.c.test: curl's verification must fail (60) ...
        out = self.curl("--resolve", f"a.b.c.test:{port}:{LOCALHOST}", "--cacert", self.pki.ca,
                        "-u", f"{USER}:{PASSWORD}", f"imaps://a.b.c.test:{port}/", "-X", "CAPABILITY")
        self.assertEqual(out.returncode, 60, out.stderr)
        # ... and without verification the key is the default one
        out = self.curl("-k", "--resolve", f"a.b.c.test:{port}:{LOCALHOST}",
                        "--pinnedpubkey", self.pki.spki_pin("default"), "-u", f"{USER}:{PASSWORD}",
                        f"imaps://a.b.c.test:{port}/", "-X", "CAPABILITY")
        self.assertEqual(out.returncode, 0, out.stderr)

    # -- 2. round trips ------------------------------------------------------------------------

    def test_imap_login_and_fetch(self):
        subject = unique("imap")
        self.dovecot.seed(message(subject))
        m = ImapSni("mail.a.test", self.postern.port("imap"), ssl_context=self.pki.context())
        port = m.sock.getsockname()[1]
        version, cipher = m.sock.version(), m.sock.cipher()[0]
        self.assertEqual(self.pki.identify(m.sock.getpeercert(binary_form=True)), "a")
        self.read_message(m, subject, "(RFC822)")
        fields = self.assert_session(port, "imap", protocol="imap", sni="mail.a.test",
                                     cert="mail.a.test", backend="imap", tls=version, cipher=cipher)
        for key in ("bytes_in", "bytes_out", "duration_ms"):
            self.assertRegex(fields.get(key, ""), r"^\d+$", f"{key}= in {fields['_line']}")
        # the fetched message alone is bigger than 100 bytes: bytes_out counts it
        self.assertGreater(int(fields["bytes_out"]), 100, fields["_line"])
        self.assertGreater(int(fields["bytes_in"]), 10, fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])  # after LOGOUT

    def test_pop3_login_and_retr(self):
        subject = unique("pop3")
        self.dovecot.seed(message(subject))
        p = Pop3Sni("mail.b.test", self.postern.port("pop3"), context=self.pki.context())
        port = p.sock.getsockname()[1]
        self.assertEqual(self.pki.identify(p.sock.getpeercert(binary_form=True)), "b")
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        count, _ = p.stat()
        found = False
        for i in range(1, count + 1):
            resp, lines, _ = p.retr(i)
            self.assertTrue(resp.startswith(b"+OK"))
            if f"Subject: {subject}".encode() in lines:
                found = True
        self.assertTrue(found, f"no message with Subject: {subject} among {count}")
        p.quit()
        self.assert_session(port, "pop3", protocol="pop3", sni="mail.b.test", cert="mail.b.test",
                            backend="pop3", end="client_quit")

    def test_smtp_python_smtplib(self):
        subject = unique("smtplib")
        s = SmtpSni("mail.a.test", self.postern.port("smtp"), context=self.pki.context())
        port = s.sock.getsockname()[1]
        self.assertEqual(self.pki.identify(s.sock.getpeercert(binary_form=True)), "a")
        refused = s.sendmail("sender@c.test", ["test@a.test"], message(subject))
        self.assertEqual(refused, {})
        s.quit()
        delivered = self.postfix.wait_for_mail(subject)
        self.assertIn(f"Subject: {subject}", delivered.read_text())
        self.assert_session(port, "smtp", protocol="smtp", sni="mail.a.test", cert="mail.a.test",
                            backend="smtp", end="client_quit")

    def test_smtp_swaks_tls_on_connect(self):
        subject = unique("swaks")
        peer = self.workdir_for_test() / "swaks-peer.pem"
        out = run(["swaks", "--server", LOCALHOST, "--port", self.postern.port("smtp"),
                   "--tls-on-connect", "--tls-sni", "mail.b.test", "--tls-verify",
                   "--tls-ca-path", self.pki.ca, "--tls-get-peer-cert", peer,
                   "--from", "sender@c.test", "--to", "test@a.test", "--header", f"Subject: {subject}",
                   "--timeout", "20"], timeout=40)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"<~  250 2\.0\.0 Ok: queued")
        self.assertEqual(self.pki.identify_pem(peer.read_text()), "b")
        self.postfix.wait_for_mail(subject)

    def test_smtp_curl_smtps(self):
        subject = unique("curl-smtps")
        eml = self.workdir_for_test() / "msg.eml"
        eml.write_bytes(message(subject))
        port = self.postern.port("smtp")
        out = self.curl("--resolve", f"mail.a.test:{port}:{LOCALHOST}", "--cacert", self.pki.ca,
                        "--pinnedpubkey", self.pki.spki_pin("a"), f"smtps://mail.a.test:{port}",
                        "--mail-from", "sender@c.test", "--mail-rcpt", "test@a.test",
                        "--upload-file", eml)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.postfix.wait_for_mail(subject)

    # -- 3. capability filtering and STARTTLS on implicit listeners -------------------------

    def test_imap_capabilities_hide_starttls_and_logindisabled(self):
        for listener in ("imap_st", "imap"):
            with self.subTest(listener=listener):
                c, _, greeting = self.greet(listener, "mail.a.test")
                self.assertTrue(greeting.startswith("* OK"), greeting)
                if listener == "imap_st":
                    self.assertIn("[CAPABILITY ", greeting)  # Dovecot's greeting carries it
                for token in ("STARTTLS", "LOGINDISABLED"):
                    self.assertNotIn(token, greeting)
                lines = c.imap("a1", "CAPABILITY")
                caps = [l for l in lines if l.startswith("* CAPABILITY")]
                self.assertEqual(len(caps), 1, lines)
                self.assertIn("IMAP4rev1", caps[0])
                for token in ("STARTTLS", "LOGINDISABLED"):
                    self.assertNotIn(token, caps[0])
                self.assertTrue(lines[-1].startswith("a1 OK"), lines)
                c.close()

    def test_imap_starttls_on_implicit_listener_is_refused(self):
        c, _, _ = self.greet("imap_st", "mail.a.test")  # the backend itself would accept STARTTLS
        lines = c.imap("a2", "STARTTLS")
        self.assertTrue(lines[-1].startswith("a2 BAD"), lines)
        self.assertFalse(any(l.startswith("a2 OK") for l in lines), lines)
        lines = c.imap("a3", "NOOP")  # still speaking IMAP inside the same TLS session
        self.assertTrue(lines[-1].startswith("a3 OK"), lines)
        c.close()

    def test_pop3_capa_hides_stls_and_stls_is_refused(self):
        for listener in ("pop3_st", "pop3"):
            with self.subTest(listener=listener):
                c, _, greeting = self.greet(listener, "mail.b.test")
                self.assertTrue(greeting.startswith("+OK"), greeting)
                capa = c.pop3_multiline("CAPA")
                self.assertTrue(capa[0].startswith("+OK"), capa)
                self.assertIn("UIDL\r\n", capa)
                self.assertNotIn("STLS\r\n", capa)
                self.assertFalse(any(l.upper().startswith("STLS") for l in capa), capa)
                c.send("STLS")
                reply = c.readline()
                self.assertTrue(reply.startswith("-ERR"), reply)
                capa = c.pop3_multiline("CAPA")
                self.assertTrue(capa[0].startswith("+OK"), capa)
                c.close()

    def test_smtp_ehlo_hides_starttls_and_starttls_is_refused(self):
        for listener in ("smtp_st", "smtp"):
            with self.subTest(listener=listener):
                c, _, greeting = self.greet(listener, "mail.a.test")
                self.assertTrue(greeting.startswith("220 "), greeting)
                ehlo = c.smtp("EHLO client.c.test")
                self.assertTrue(all(l.startswith("250") for l in ehlo), ehlo)
                self.assertTrue(any("PIPELINING" in l for l in ehlo), ehlo)
                self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
                reply = c.smtp("STARTTLS")
                self.assertRegex(reply[-1], r"^5\d\d[ -]", reply)
                reply = c.smtp("NOOP")
                self.assertTrue(reply[-1].startswith("250"), reply)
                c.close()

    # -- 4. unreachable backends ---------------------------------------------------------------

    def test_unreachable_backend_answers_in_protocol_and_others_keep_working(self):
        expected = {"imap": r"^\* BYE ", "pop3": r"^-ERR", "smtp": r"^421 4\.3\.0 "}
        for proto, pattern in expected.items():
            with self.subTest(protocol=proto):
                c = self.open(f"{proto}_dead", "mail.a.test")
                self.assertEqual(self.pki.identify(c.sock.getpeercert(binary_form=True)), "a")
                port = c.local_port
                text = c.read_to_eof()
                c.close()
                self.assertRegex(text, pattern, c.transcript)
                self.assertEqual(len(text.splitlines()), 1, f"exactly one line, then close: {text!r}")
                self.assert_session(port, f"{proto}_dead", protocol=proto, sni="mail.a.test",
                                    cert="mail.a.test", backend="nowhere", end="backend_unreachable")
                self.imap_works()  # another listener, right after

    def test_backend_connect_timeout(self):
        c = self.open("imap_blackhole", "mail.b.test")
        port = c.local_port
        started = time.monotonic()
        text = c.read_to_eof()
        elapsed = time.monotonic() - started
        c.close()
        self.assertRegex(text, r"^\* BYE ")
        self.assertLess(elapsed, 6.0, "connect_timeout = 1s was not applied")
        self.assertGreater(elapsed, 0.5, "answered before any connect timeout could expire")
        self.assert_session(port, "imap_blackhole", backend="blackhole", end="backend_unreachable")
        self.imap_works()

    # -- 8. bad input / robustness ------------------------------------------------------------

    def test_junk_instead_of_client_hello(self):
        junks = {"imap": b"a1 LOGIN test secret\r\n", "pop3": b"\x00\xff" * 300,
                 "smtp": b"EHLO junk.example\r\n" * 20}
        for proto, junk in junks.items():
            with self.subTest(protocol=proto):
                s = socket.create_connection((LOCALHOST, self.postern.port(proto)), 5)
                s.settimeout(10)
                port = s.getsockname()[1]
                s.sendall(junk)
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                s.close()
                # nothing but (at most) a TLS alert record, then the connection is closed
                self.assertTrue(data == b"" or data[0] == 0x15, data[:80])
                self.assertNotIn(b"OK", data)
                self.assertNotIn(b"220", data)
                self.assert_session(port, proto, protocol=proto, end="tls_failed")
        self.imap_works()

    def test_silent_clients_do_not_block_others(self):
        silent = [socket.create_connection((LOCALHOST, self.postern.port(p)), 5)
                  for p in ("imap", "imap", "pop3", "smtp") * 5]
        try:
            started = time.monotonic()
            self.imap_works()
            p = Pop3Sni("mail.b.test", self.postern.port("pop3"), context=self.pki.context())
            p.user(USER)
            self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
            p.quit()
            s = SmtpSni("mail.a.test", self.postern.port("smtp"), context=self.pki.context())
            self.assertEqual(s.noop()[0], 250)
            s.quit()
            self.assertLess(time.monotonic() - started, 8.0)
        finally:
            for s in silent:
                s.close()


class StrictListenerOptions(IntegrationCase):
    """strict_sni = true, min_version = "1.3" and a short handshake_timeout."""

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki, strict_sni=True,
                                          min_version="1.3"))
        p.backend("imap", cls.dovecot.imap_address)
        p.listener("imap", "imap", "imap", handshake_timeout="1s")
        p.start()

    def imap_works(self, sni="mail.a.test"):
        m = ImapSni(sni, self.postern.port("imap"), ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()

    def test_strict_sni_rejects_unknown_names_with_unrecognized_name(self):
        for sni in ("mail.unknown.test", "a.b.c.test", "c.test"):
            with self.subTest(sni=sni):
                raw = socket.create_connection((LOCALHOST, self.postern.port("imap")), 5)
                port = raw.getsockname()[1]
                with self.assertRaises(ssl.SSLError) as ctx:
                    self.pki.context(verify=False).wrap_socket(raw, server_hostname=sni)
                raw.close()
                self.assertIn("UNRECOGNIZED_NAME", str(ctx.exception).upper().replace(" ", "_"))
                fields = self.postern.session_end(port, "imap")
                self.assertEqual(fields.get("end"), "tls_failed", fields["_line"])
                self.assertEqual(fields.get("sni"), sni, fields["_line"])
                self.assertEqual(fields.get("detail"), "unknown server name refused (strict_sni)",
                                 fields["_line"])
        for sni, want in (("mail.a.test", "a"), ("x.c.test", "c"), (None, "default")):
            with self.subTest(sni=sni):
                c = LineClient(tls_connect(self.postern.port("imap"), sni))
                self.assertEqual(self.pki.identify(c.sock.getpeercert(binary_form=True)), want)
                self.assertTrue(c.readline().startswith("* OK"))
                c.close()
        self.imap_works("x.c.test")

    def test_min_version_13_refuses_tls12_clients(self):
        ctx = self.pki.context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        raw = socket.create_connection((LOCALHOST, self.postern.port("imap")), 5)
        with self.assertRaises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="mail.a.test")
        raw.close()
        self.imap_works()

    def test_silent_client_is_closed_after_handshake_timeout(self):
        s = socket.create_connection((LOCALHOST, self.postern.port("imap")), 5)
        port = s.getsockname()[1]
        s.settimeout(10)
        started = time.monotonic()
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - started
        s.close()
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 5.0)
        self.assertGreater(elapsed, 0.5)
        fields = self.postern.session_end(port, "imap")
        self.assertEqual(fields.get("end"), "timeout", fields["_line"])
        self.assertEqual(fields.get("sni"), "-", fields["_line"])
        self.imap_works()


if __name__ == "__main__":
    unittest.main()
