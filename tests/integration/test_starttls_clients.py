"""Real clients through postern's STARTTLS listeners (fixture: starttls_case): openssl s_client,
python's imaplib/poplib/smtplib, curl and swaks get the certificate chosen by SNI and complete
full mail round trips into Dovecot and Postfix; a port-25 listener also delivers in plaintext
(EHLO and HELO) when the client does not ask for STARTTLS.
"""

import re
import unittest

from harness import (LOCALHOST, PASSWORD, USER, ImapStarttls, Pop3Starttls, SmtpStarttls, message,
                     run, unique)
from starttls_case import StartTlsCase


class StartTlsClients(StartTlsCase):
    # -- real clients through STARTTLS --------------------------------------------------

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
        self.read_message(m, subject)
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

    # -- port 25 without STARTTLS: plaintext delivery -----------------------------------

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


if __name__ == "__main__":
    unittest.main()
