"""No IMAP credentials in clear (issue 13): an IMAP STARTTLS listener with require_tls = false
relays a client that never upgrades to Dovecot in plaintext, but never its LOGIN or
AUTHENTICATE, before or after the backend is connected, and the capabilities it sees say
LOGINDISABLED with no AUTH=. A RecordingRelay between postern and Dovecot proves what Dovecot
received; Dovecot on 127.0.0.1 counts postern's connections as secured, so it would accept the
plaintext login itself (the control test shows it), which is why postern must refuse it. After
STARTTLS the login works.
"""

import base64
import socket
import unittest

from harness import (Dovecot, ImapStarttls, IntegrationCase, LOCALHOST, LineClient, PASSWORD, Pki,
                     Postern, RecordingRelay, USER)


def sasl_plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class CleartextImap(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot", starttls=True, pki=cls.pki)).start()
        cls.relay = cls.own(RecordingRelay(cls.tmp / "relay", cls.dovecot.imap_address,
                                           "relay-imap")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("imap_rec", cls.relay.address)
        p.listener("imap_plain", "imap", "imap_rec", tls="starttls", require_tls=False)
        p.start()

    def plain(self) -> LineClient:
        c = LineClient(socket.create_connection((LOCALHOST, self.postern.port("imap_plain")), 5))
        self.addCleanup(c.close)
        return c

    def assert_refused(self, c: LineClient, tag: str, command: str) -> None:
        lines = c.imap(tag, command)
        self.assertEqual(len(lines), 1, f"no '+' continuation, nothing else: {c.transcript}")
        self.assertTrue(lines[0].startswith(f"{tag} NO [PRIVACYREQUIRED]"), c.transcript)

    def dovecot_log_size(self) -> int:
        return (self.dovecot.dir / "dovecot.log").stat().st_size

    def dovecot_log_since(self, offset: int) -> str:
        with open(self.dovecot.dir / "dovecot.log", "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def test_control_dovecot_alone_accepts_this_plaintext_login(self):
        # What postern's connections look like to Dovecot: loopback, hence "secured".
        c = LineClient(socket.create_connection((LOCALHOST, self.dovecot.imap_port), 5))
        self.addCleanup(c.close)
        c.readline()
        self.assertTrue(c.imap("a1", f"LOGIN {USER} {PASSWORD}")[-1].startswith("a1 OK"), c.transcript)
        c.imap("a2", "LOGOUT")

    def test_plaintext_client_never_sends_credentials(self):
        mark, log_at = self.relay.mark(), self.dovecot_log_size()
        c = self.plain()
        port = c.local_port
        greeting = c.readline()
        self.assertRegex(greeting, r"^\* OK \[CAPABILITY [^]]*\bLOGINDISABLED\b")
        self.assertNotIn("AUTH=", greeting)
        # Before any backend: postern's own answers.
        lines = c.imap("a1", "CAPABILITY")
        self.assertIn("LOGINDISABLED", lines[0].split(), lines)
        self.assertNotIn("AUTH=", lines[0])
        self.assert_refused(c, "a2", f"LOGIN {USER} {PASSWORD}")
        self.assert_refused(c, "a3", f"AUTHENTICATE PLAIN {sasl_plain(USER, PASSWORD)}")
        # ID goes to Dovecot in plaintext: from here on the session is relayed.
        lines = c.imap("a4", 'ID ("name" "cleartext-test")')
        self.assertTrue(lines[-1].startswith("a4 OK"), c.transcript)
        self.assertTrue(any(l.startswith("* ID ") for l in lines), f"Dovecot's ID reply: {lines}")
        lines = c.imap("a5", "CAPABILITY")
        caps = [l for l in lines if l.startswith("* CAPABILITY ")]
        self.assertEqual(len(caps), 1, lines)
        self.assertIn("SASL-IR", caps[0].split(), "Dovecot's own list, filtered")
        self.assertIn("LOGINDISABLED", caps[0].split())
        self.assertNotIn("AUTH=", caps[0])
        self.assertNotIn("STARTTLS", caps[0].split())
        self.assert_refused(c, "a6", f"LOGIN {USER} {PASSWORD}")
        self.assert_refused(c, "a7", "AUTHENTICATE PLAIN")
        self.assert_refused(c, "a8", f"AUTHENTICATE PLAIN {sasl_plain(USER, PASSWORD)}")
        # LITERAL+ (Dovecot offers it): the literal's bytes are read and dropped.
        c.sock.sendall(f"a9 LOGIN {{{len(USER)}+}}\r\n{USER} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode())
        reply = c.readline()
        self.assertTrue(reply.startswith("a9 NO [PRIVACYREQUIRED]"), c.transcript)
        self.assertTrue(c.imap("b1", "NOOP")[-1].startswith("b1 OK"), c.transcript)
        self.assertTrue(c.imap("b2", "LOGOUT")[-1].startswith("b2 OK"), c.transcript)
        c.close()
        fields = self.postern.session_end(port, "imap_plain")
        self.assertEqual(fields.get("tls"), "-", fields["_line"])

        conns = self.relay.connections(mark)
        self.assertEqual(len(conns), 1, [bytes(x.to_backend) for x in conns])
        self.assertTrue(conns[0].closed.wait(10), "backend connection closed")
        sent = bytes(conns[0].to_backend)
        self.assertIn(b"a4 ID", sent)
        for word in (b"LOGIN", b"AUTHENTICATE", PASSWORD.encode(), sasl_plain(USER, PASSWORD).encode()):
            self.assertNotIn(word, sent, f"reached Dovecot in plaintext: {sent!r}")
        self.assertNotRegex(self.dovecot_log_since(log_at), r"imap-login: (Login|Aborted login|Disconnected)"
                            r"[^\n]*user=<" + USER, "Dovecot saw a login attempt")

    def test_after_starttls_login_works(self):
        m = ImapStarttls("mail.a.test", self.postern.port("imap_plain"))
        self.addCleanup(lambda: m.shutdown() if m.state != "LOGOUT" else None)
        self.assertIn("LOGINDISABLED", m.capabilities)
        m.starttls(ssl_context=self.pki.context())
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()


if __name__ == "__main__":
    unittest.main()
