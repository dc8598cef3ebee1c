"""No credentials in clear on STARTTLS listeners where plaintext may go on (require_tls = false),
against real Postfix (SASL through Dovecot) and Dovecot (issue 13, defect 2).

Postern's port-25 listener never offers AUTH before TLS and answers AUTH with 530 itself, before
and after the backend is connected in plaintext; mail without TLS still flows, and after STARTTLS
AUTH works. The same for POP3 USER/PASS/APOP/AUTH. Each test first shows the backend itself
taking the credentials in plaintext from postern's address (so the refusal is postern's own),
and a RecordingRelay between postern and the backend shows what the backend received.
"""

import re
import socket
import unittest

from harness import (Dovecot, IntegrationCase, LOCALHOST, LineClient, PASSWORD, Pki, Postern,
                     Postfix, RecordingRelay, USER, message, unique, wait_until)
from starttls_case import BACKEND_SMTP_NAME, HOSTNAME, add_sasl, b64_plain, is_probe

MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first\r\n"


def keywords(ehlo: list[str]) -> list[str]:
    return [l[4:].split()[0].upper() for l in ehlo[1:] if len(l) > 4]


class PlaintextCredentials(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = Dovecot(cls.tmp / "dovecot", starttls=True, pki=cls.pki)
        cls.postfix = Postfix(cls.tmp / "postfix", pki=cls.pki)
        add_sasl(cls.dovecot, cls.postfix)
        cls.own(cls.dovecot).start()
        cls.own(cls.postfix).start()
        cls.relays = {
            "smtp": cls.own(RecordingRelay(cls.tmp / "relay-smtp", cls.postfix.tls_address, "relay-smtp")).start(),
            "pop3": cls.own(RecordingRelay(cls.tmp / "relay-pop3", cls.dovecot.pop3_address, "relay-pop3")).start(),
        }
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.server["hostname"] = HOSTNAME
        p.backend("smtp", cls.relays["smtp"].address)
        p.backend("pop3", cls.relays["pop3"].address)
        p.listener("mx", "smtp", "smtp", tls="starttls")  # port 25: require_tls = false by default
        p.listener("pop3", "pop3", "pop3", tls="starttls", require_tls=False)
        p.start()
        # postern learns the backend's EHLO extensions right after startup
        wait_until(lambda: "SIZE" in "".join(cls.pre_tls_ehlo()), 10, "postern's EHLO probe of Postfix",
                   interval=0.2)

    @classmethod
    def pre_tls_ehlo(cls) -> list[str]:
        c = LineClient(socket.create_connection((LOCALHOST, cls.postern.port("mx")), 5), 5)
        try:
            c.smtp_reply()
            return c.smtp("EHLO probe-wait.c.test")
        finally:
            c.close()

    def plain(self, listener: str) -> LineClient:
        c = LineClient(socket.create_connection((LOCALHOST, self.postern.port(listener)), 5))
        self.addCleanup(c.close)
        return c

    def backend_bytes(self, relay: str, since: int) -> bytes:
        """What postern sent the backend since the mark (its EHLO probes left out), once every
        such connection is closed."""
        r = self.relays[relay]
        r.sync()

        def done():
            conns = [c for c in r.connections(since) if not (c.closed.is_set() and is_probe(c))]
            return (conns,) if all(c.closed.is_set() for c in conns) else None  # () is falsy
        (conns,) = wait_until(done, 10, f"closed backend connections through {relay}")
        return b"".join(bytes(c.to_backend) for c in conns if not is_probe(c))

    # -- SMTP ----------------------------------------------------------------------------------

    def test_postfix_takes_auth_in_plaintext_from_postern(self):
        """The control: Postfix offers AUTH on this port and takes credentials in plaintext from
        127.0.0.1, so only postern can keep them off the wire."""
        c = LineClient(socket.create_connection((LOCALHOST, self.postfix.tls_port), 5))
        self.addCleanup(c.close)
        c.smtp_reply()
        self.assertIn("AUTH", keywords(c.smtp("EHLO client.c.test")))
        self.assertRegex(c.smtp(f"AUTH PLAIN {b64_plain(USER, PASSWORD)}")[-1], r"^235 ")

    def test_smtp_no_auth_before_tls(self):
        mark = self.relays["smtp"].mark()
        c = self.plain("mx")
        c.smtp_reply()
        ehlo = c.smtp("EHLO client.c.test")
        words = keywords(ehlo)
        self.assertIn("SIZE", words, ehlo)  # the backend's extensions, as learned
        self.assertIn("STARTTLS", words, ehlo)
        self.assertNotIn("AUTH", words, ehlo)
        self.assertFalse(any(w.startswith("AUTH=") for w in words), ehlo)
        for command in (f"AUTH PLAIN {b64_plain(USER, PASSWORD)}", "AUTH LOGIN", "auth plain"):
            self.assertEqual(c.smtp(command), [MUST_STARTTLS], command)
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        self.assertEqual(self.backend_bytes("smtp", mark), b"", "postern connected the backend")

    def test_smtp_plaintext_mail_flows_but_auth_is_refused(self):
        subject = unique("clear-25")
        mark = self.relays["smtp"].mark()
        c = self.plain("mx")
        c.smtp_reply()
        c.smtp("EHLO client.c.test")
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")  # now in plaintext
        ehlo = c.smtp("EHLO client.c.test")  # the backend's own reply, relayed
        self.assertRegex(ehlo[0], r"^250-" + re.escape(BACKEND_SMTP_NAME), ehlo)
        self.assertNotIn("AUTH", keywords(ehlo), ehlo)
        self.assertNotIn("STARTTLS", keywords(ehlo), ehlo)
        self.assertEqual(c.smtp(f"AUTH PLAIN {b64_plain(USER, PASSWORD)}"), [MUST_STARTTLS])
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("DATA")[-1], r"^354 ")
        c.sock.sendall(message(subject) + b".\r\n")
        self.assertRegex(c.smtp_reply()[-1], r"^250 ")
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        self.postfix.wait_for_mail(subject)
        sent = self.backend_bytes("smtp", mark)
        self.assertIn(b"RCPT TO:<test@a.test>", sent)
        self.assertNotIn(b"AUTH", sent.upper(), "credentials reached the backend in clear")

    def test_smtp_auth_after_starttls(self):
        c = self.plain("mx")
        c.smtp_reply()
        c.smtp("EHLO client.c.test")
        self.assertEqual(c.smtp("STARTTLS"), ["220 2.0.0 Ready to start TLS\r\n"])
        c.starttls("mail.a.test")
        ehlo = c.smtp("EHLO client.c.test")
        self.assertIn("AUTH", keywords(ehlo), ehlo)
        self.assertRegex(c.smtp(f"AUTH PLAIN {b64_plain(USER, PASSWORD)}")[-1], r"^235 ")
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")

    # -- POP3 ----------------------------------------------------------------------------------

    def test_dovecot_takes_user_pass_in_plaintext_from_postern(self):
        """The control, as for SMTP: Dovecot logs in a plaintext USER/PASS from 127.0.0.1."""
        c = LineClient(socket.create_connection((LOCALHOST, self.dovecot.pop3_port), 5))
        self.addCleanup(c.close)
        c.readline()
        c.send(f"USER {USER}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send(f"PASS {PASSWORD}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)

    def test_pop3_no_credentials_before_tls(self):
        mark = self.relays["pop3"].mark()
        c = self.plain("pop3")
        c.readline()
        capa = c.pop3_multiline("CAPA")
        names = [l.split()[0].upper() for l in capa[1:-1]]
        self.assertIn("STLS", names, capa)
        self.assertNotIn("USER", names, capa)
        self.assertNotIn("SASL", names, capa)
        for command in (f"USER {USER}", f"PASS {PASSWORD}", "APOP test 0123456789abcdef0123456789abcdef",
                        "AUTH PLAIN", f"AUTH PLAIN {b64_plain(USER, PASSWORD)}", "AUTH"):
            c.send(command)
            reply = c.readline()
            self.assertTrue(reply.startswith("-ERR [AUTH]"), (command, reply))
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        self.assertEqual(self.backend_bytes("pop3", mark), b"", "postern connected the backend")

    def test_pop3_plaintext_session_refuses_credentials(self):
        mark = self.relays["pop3"].mark()
        c = self.plain("pop3")
        c.readline()
        c.send("NOOP")  # only the backend answers it: the session goes on in plaintext
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
        capa = c.pop3_multiline("CAPA")  # Dovecot's own, relayed
        self.assertTrue(capa[0].startswith("+OK"), capa)
        names = [l.split()[0].upper() for l in capa[1:-1]]
        self.assertIn("UIDL", names, capa)
        for withheld in ("USER", "SASL", "STLS"):
            self.assertNotIn(withheld, names, capa)
        for command in (f"USER {USER}", f"PASS {PASSWORD}", f"AUTH PLAIN {b64_plain(USER, PASSWORD)}"):
            c.send(command)
            reply = c.readline()
            self.assertTrue(reply.startswith("-ERR [AUTH]"), (command, reply))
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        sent = self.backend_bytes("pop3", mark)
        self.assertIn(b"CAPA", sent)
        for word in (b"USER", b"PASS", b"AUTH"):
            self.assertNotIn(word, sent.upper(), "credentials reached the backend in clear")

    def test_pop3_after_stls_login_and_bare_auth(self):
        """After STLS the login works; a bare AUTH (no mechanism) is answered by postern from
        Dovecot's CAPA, in Dovecot's own multi-line form, and never reaches Dovecot."""
        mark = self.relays["pop3"].mark()
        c = self.plain("pop3")
        c.readline()
        c.send("STLS")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.starttls("mail.a.test")
        c.send("AUTH")
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)  # no CAPA seen yet
        capa = c.pop3_multiline("CAPA")
        sasl = [l.split()[1:] for l in capa if l.upper().startswith("SASL ")]
        self.assertEqual(len(sasl), 1, capa)
        self.assertIn("USER\r\n", capa)
        listed = c.pop3_multiline("AUTH")
        self.assertEqual(listed, ["+OK\r\n"] + [m + "\r\n" for m in sasl[0]] + [".\r\n"])
        capa_again = c.pop3_multiline("CAPA")  # still framed right
        self.assertEqual(capa_again, capa)
        c.send(f"USER {USER}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send(f"PASS {PASSWORD}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        sent = self.backend_bytes("pop3", mark)
        self.assertEqual(sent, f"CAPA\r\nCAPA\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode())


if __name__ == "__main__":
    unittest.main()
