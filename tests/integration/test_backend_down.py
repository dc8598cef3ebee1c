"""A backend that dies while postern runs: open sessions end, new clients get a protocol
error over TLS, and every other listener keeps serving."""

import unittest

from harness import (PASSWORD, USER, Dovecot, ImapSni, IntegrationCase, LineClient, Pki, Pop3Sni,
                     Postern, message, tls_connect, unique, wait_not_listening)


class BackendKilled(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.victim = cls.own(Dovecot(cls.tmp / "dovecot-victim", instance="victim")).start()
        cls.survivor = cls.own(Dovecot(cls.tmp / "dovecot-survivor", instance="survivor")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("victim_imap", cls.victim.imap_address)
        p.backend("victim_pop3", cls.victim.pop3_address)
        p.backend("survivor_imap", cls.survivor.imap_address)
        p.listener("imap", "imap", "victim_imap")
        p.listener("pop3", "pop3", "victim_pop3")
        p.listener("imap2", "imap", "survivor_imap")
        p.start()

    def imap_login(self, listener: str, sni: str = "mail.a.test") -> ImapSni:
        m = ImapSni(sni, self.postern.port(listener), ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        return m

    def test_kill_backend_then_connect(self):
        subject = unique("before-kill")
        self.victim.seed(message(subject))
        # 1. works while the backend is up; keep one session open (logged in, mailbox selected)
        m = self.imap_login("imap")
        self.assertEqual(m.search(None, "SUBJECT", subject)[0], "OK")
        open_port = m.sock.getsockname()[1]

        # 2. kill the backend
        self.victim.stop()
        wait_not_listening([self.victim.imap_port, self.victim.pop3_port], 15, "killed dovecot")

        # the open session ends (Dovecot's imap process goes with its master)
        m.sock.settimeout(10)
        LineClient(m.sock).read_to_eof()  # a hang raises TimeoutError
        m.sock.close()
        fields = self.postern.session_end(open_port, "imap")
        self.assertEqual(fields.get("end"), "backend_closed", fields["_line"])

        # 3. new clients get the protocol's error over TLS, from the right certificate
        for listener, sni, pattern in (("imap", "mail.b.test", r"^\* BYE "), ("pop3", "x.c.test", r"^-ERR")):
            with self.subTest(listener=listener):
                c = LineClient(tls_connect(self.postern.port(listener), sni))
                port = c.local_port
                self.assertEqual(self.pki.identify(c.sock.getpeercert(binary_form=True)),
                                 {"mail.b.test": "b", "x.c.test": "c"}[sni])
                text = c.read_to_eof()
                c.close()
                self.assertRegex(text, pattern)
                fields = self.postern.session_end(port, listener)
                self.assertEqual(fields.get("end"), "backend_unreachable", fields["_line"])
                self.assertEqual(fields.get("sni"), sni, fields["_line"])

                # 4. right after, the other listener still works
                self.imap_login("imap2", "mail.b.test").logout()

        # 5. and a verifying POP3 client on the dead listener fails cleanly, not with a hang
        with self.assertRaises(Exception) as ctx:
            Pop3Sni("mail.a.test", self.postern.port("pop3"), context=self.pki.context(), timeout=10)
        self.assertIn("-ERR", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
