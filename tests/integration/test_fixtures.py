"""Self-test of the harness: backends and clients work on their own, without postern.

If these fail, the postern tests' failures say nothing about postern. They also pin the facts
other tests rely on: the STARTTLS-advertising backends really advertise STARTTLS / STLS /
LOGINDISABLED, and the CLI clients really send the SNI bytes the tests think they send.
"""

import imaplib
import poplib
import smtplib
import socket
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Courier, Dovecot, IntegrationCase, LineClient, Pki,
                     Postfix, message, run, sni_sent_by, unique)


class BackendFixtures(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.dovecot_tls = cls.own(Dovecot(cls.tmp / "dovecot-tls", listen="127.0.0.2", starttls=True,
                                          pki=cls.pki)).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix", pki=cls.pki)).start()

    def test_dovecot_imap_and_pop3_with_curl(self):
        subject = unique("fixture")
        self.dovecot.seed(message(subject))
        out = run(["curl", "-sS", "-u", f"{USER}:{PASSWORD}",
                   f"imap://{LOCALHOST}:{self.dovecot.imap_port}/INBOX;UID=1"], check=True)
        self.assertIn("Subject: fixture-", out.stdout)
        out = run(["curl", "-sS", "-u", f"{USER}:{PASSWORD}",
                   f"pop3://{LOCALHOST}:{self.dovecot.pop3_port}/"], check=True)
        self.assertRegex(out.stdout, r"(?m)^1 \d+")

    def test_dovecot_tls_backend_advertises_starttls_and_logindisabled(self):
        c = LineClient(socket.create_connection(("127.0.0.2", self.dovecot_tls.imap_port), 5))
        greeting = c.readline()
        self.assertIn("STARTTLS", greeting)
        self.assertIn("LOGINDISABLED", greeting)
        caps = c.imap("a1", "CAPABILITY")
        self.assertIn("STARTTLS", caps[0])
        self.assertIn("LOGINDISABLED", caps[0])
        c.close()
        p = LineClient(socket.create_connection(("127.0.0.2", self.dovecot_tls.pop3_port), 5))
        self.assertTrue(p.readline().startswith("+OK"))
        capa = p.pop3_multiline("CAPA")
        self.assertIn("STLS\r\n", capa)
        p.close()

    def test_postfix_delivers_to_virtual_maildir(self):
        subject = unique("swaks")
        run(["swaks", "--server", LOCALHOST, "--port", self.postfix.port, "--from", "s@c.test",
             "--to", "test@a.test", "--header", f"Subject: {subject}"], check=True)
        self.postfix.wait_for_mail(subject)
        with smtplib.SMTP(LOCALHOST, self.postfix.port, timeout=10) as s:
            code, ehlo = s.ehlo()
            self.assertEqual(code, 250)
            self.assertNotIn(b"STARTTLS", ehlo)

    def test_postfix_tls_port_advertises_starttls(self):
        with smtplib.SMTP(LOCALHOST, self.postfix.tls_port, timeout=10) as s:
            code, ehlo = s.ehlo()
            self.assertEqual(code, 250)
            self.assertIn(b"STARTTLS", ehlo)

    def test_clients_send_the_sni_we_think(self):
        for name in ("MAIL.A.TEST.", "127.0.0.1", "x.c.test"):
            got = sni_sent_by(lambda port: ["openssl", "s_client", "-connect", f"{LOCALHOST}:{port}",
                                            "-servername", name])
            self.assertEqual(got, name.encode(), f"openssl s_client -servername {name}")
        got = sni_sent_by(lambda port: ["openssl", "s_client", "-connect", f"{LOCALHOST}:{port}",
                                        "-noservername"])
        self.assertIsNone(got)
        got = sni_sent_by(lambda port: ["curl", "-sS", "-k", "--max-time", "5", "--resolve",
                                        f"mail.b.test:{port}:{LOCALHOST}", f"imaps://mail.b.test:{port}/"])
        self.assertEqual(got, b"mail.b.test")
        got = sni_sent_by(lambda port: ["swaks", "--server", LOCALHOST, "--port", port, "--tls-on-connect",
                                        "--tls-sni", "mail.a.test", "--to", "test@a.test",
                                        "--timeout", "5"])
        self.assertEqual(got, b"mail.a.test")


class CourierFixture(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.courier = cls.own(Courier(cls.tmp / "courier")).start()

    def test_courier_imap_and_pop3(self):
        subject = unique("courier")
        self.courier.seed(message(subject))
        m = imaplib.IMAP4(LOCALHOST, self.courier.imap_port, timeout=10)
        self.assertEqual(m.login("test@a.test", PASSWORD)[0], "OK")
        m.select("INBOX")
        typ, data = m.search(None, "SUBJECT", subject)
        self.assertEqual(typ, "OK")
        self.assertTrue(data[0].split())
        m.logout()
        p = poplib.POP3(LOCALHOST, self.courier.pop3_port, timeout=10)
        p.user(USER)
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        count, _ = p.stat()
        self.assertGreaterEqual(count, 1)
        p.quit()


if __name__ == "__main__":
    unittest.main()
