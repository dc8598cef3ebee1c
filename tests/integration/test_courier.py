"""Courier IMAP / POP3 behind postern: the legacy backend (no TLS SNI, no PROXY protocol) that
postern exists for. Only successful logins here: Courier stalls 5 s after a failed one."""

import unittest

from harness import (PASSWORD, USER, Courier, ImapSni, IntegrationCase, LineClient, Pki, Pop3Sni,
                     Postern, message, tls_connect, unique)


class CourierBackend(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.courier = cls.own(Courier(cls.tmp / "courier")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("courier_imap", cls.courier.imap_address)
        p.backend("courier_pop3", cls.courier.pop3_address)
        p.listener("imap", "imap", "courier_imap")
        p.listener("pop3", "pop3", "courier_pop3")
        p.start()

    def test_imap_login_and_fetch(self):
        subject = unique("courier-imap")
        self.courier.seed(message(subject))
        m = ImapSni("mail.a.test", self.postern.port("imap"), ssl_context=self.pki.context())
        port = m.sock.getsockname()[1]
        self.assertEqual(self.pki.identify(m.sock.getpeercert(binary_form=True)), "a")
        self.assertNotIn("STARTTLS", " ".join(m.capabilities).upper())
        self.read_message(m, subject)
        fields = self.postern.session_end(port, "imap")
        self.assertEqual(fields.get("backend"), "courier_imap", fields["_line"])
        self.assertEqual(fields.get("cert"), "mail.a.test", fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])

    def test_pop3_login_and_retr(self):
        subject = unique("courier-pop3")
        self.courier.seed(message(subject))
        p = Pop3Sni("x.c.test", self.postern.port("pop3"), context=self.pki.context())
        port = p.sock.getsockname()[1]
        self.assertEqual(self.pki.identify(p.sock.getpeercert(binary_form=True)), "c")
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        count, _ = p.stat()
        self.assertGreaterEqual(count, 1)
        found = any(f"Subject: {subject}".encode() in p.retr(i)[1] for i in range(1, count + 1))
        self.assertTrue(found, f"Subject: {subject} not among {count} messages")
        p.quit()
        fields = self.postern.session_end(port, "pop3")
        self.assertEqual(fields.get("backend"), "courier_pop3", fields["_line"])
        self.assertEqual(fields.get("sni"), "x.c.test", fields["_line"])
        self.assertEqual(fields.get("cert"), "*.c.test", fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])

    def test_pop3_stls_refused_on_implicit_listener(self):
        c = LineClient(tls_connect(self.postern.port("pop3"), "mail.b.test"))
        self.assertTrue(c.readline().startswith("+OK"))
        capa = c.pop3_multiline("CAPA")
        self.assertTrue(capa[0].startswith("+OK"), capa)
        self.assertNotIn("STLS\r\n", capa)
        c.send("STLS")
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.close()


if __name__ == "__main__":
    unittest.main()
