"""ALPN against cross-protocol attacks (ALPACA, USENIX Security 2021) through postern's implicit
(993/995/465-style) and STARTTLS listeners, in front of real Dovecot and Postfix: a client that
sends no ALPN is served as before; a list holding the listener's protocol (imap, pop3, smtp)
negotiates it; a list without it (an HTTPS client, another mail protocol) gets the fatal
no_application_protocol alert, no backend, and a session line that says why. openssl s_client
and Python's ssl as the clients.
"""

import re
import socket
import ssl
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, ImapSni, IntegrationCase, LineClient,
                     Pki, Postern, Postfix, parse_fields, run)

PROTOCOLS = ("imap", "pop3", "smtp")
GREETING = {"imap": "* OK", "pop3": "+OK", "smtp": "220 "}
GOODBYE = {"imap": b"a LOGOUT\r\n", "pop3": b"QUIT\r\n", "smtp": b"QUIT\r\n"}
OTHER = {"imap": "pop3", "pop3": "imap", "smtp": "imap"}  # another mail protocol's id


class Alpn(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix", pki=cls.pki)).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        for proto in PROTOCOLS:
            p.listener(proto, proto, proto)                             # implicit TLS
            p.listener(f"{proto}_st", proto, proto, tls="starttls")     # STARTTLS
        p.start()

    def s_client(self, listener: str, *args) -> tuple[int, str]:
        """openssl s_client to a listener with SNI mail.a.test; says goodbye in the listener's
        protocol and reads to the end. (exit status, stdout + stderr)"""
        proto = listener.split("_")[0]
        starttls = ["-starttls", proto] if listener.endswith("_st") else []
        out = run(["openssl", "s_client", "-connect", f"{LOCALHOST}:{self.postern.port(listener)}",
                   "-servername", "mail.a.test", "-CAfile", self.pki.ca, "-verify_return_error",
                   "-ign_eof", *starttls, *args], input=GOODBYE[proto], timeout=20)
        return out.returncode, out.stdout + out.stderr

    def session_line(self, listener: str, since: int) -> dict:
        addr = re.escape(self.postern.listen_address(listener))
        m = self.postern.wait_log(rf"^.*\bsession end\b.*\blistener={addr}\s.*$", since=since)
        return parse_fields(m.group(0))

    def assert_refused(self, listener: str, alpn: str) -> None:
        proto = listener.split("_")[0]
        mark = self.postern.log_size()
        status, text = self.s_client(listener, "-alpn", alpn)
        self.assertNotEqual(status, 0, text)
        self.assertIn("no application protocol", text)
        if not listener.endswith("_st"):  # (a STARTTLS listener greets before TLS itself)
            self.assertNotIn(GREETING[proto], text)
        fields = self.session_line(listener, mark)
        self.assertEqual(fields.get("end"), "tls_failed", fields["_line"])
        self.assertEqual(fields.get("detail"),
                         f"ALPN: {proto} not offered (client offered: {alpn})", fields["_line"])
        self.assertNotIn("backend_addr", fields, "a backend was connected")

    def test_http_client_is_refused_with_no_application_protocol(self):
        for listener in (*PROTOCOLS, *(f"{p}_st" for p in PROTOCOLS)):
            for alpn in ("http/1.1", "h2,http/1.1"):
                with self.subTest(listener=listener, alpn=alpn):
                    self.assert_refused(listener, alpn)

    def test_another_mail_protocol_is_refused(self):
        # ALPACA's own case: a client of one mail protocol steered to another's port.
        for proto in PROTOCOLS:
            for listener in (proto, f"{proto}_st"):
                with self.subTest(listener=listener):
                    self.assert_refused(listener, OTHER[proto])

    def test_the_listeners_protocol_is_negotiated(self):
        for proto in PROTOCOLS:
            for listener in (proto, f"{proto}_st"):
                for alpn in (proto, f"h2,http/1.1,{proto}"):
                    with self.subTest(listener=listener, alpn=alpn):
                        mark = self.postern.log_size()
                        status, text = self.s_client(listener, "-alpn", alpn)
                        self.assertEqual(status, 0, text)
                        self.assertIn(f"ALPN protocol: {proto}", text)
                        self.assertIn("Verify return code: 0 (ok)", text)
                        if listener == proto:  # implicit TLS: the backend's greeting follows
                            self.assertIn(GREETING[proto], text)
                        fields = self.session_line(listener, mark)
                        self.assertNotEqual(fields.get("end"), "tls_failed", fields["_line"])

    def test_no_alpn_is_served_as_before(self):
        for listener in (*PROTOCOLS, *(f"{p}_st" for p in PROTOCOLS)):
            with self.subTest(listener=listener):
                status, text = self.s_client(listener)
                self.assertEqual(status, 0, text)
                self.assertIn("No ALPN negotiated", text)
                self.assertIn("Verify return code: 0 (ok)", text)

    def test_python_ssl_alpn(self):
        context = self.pki.context()
        context.set_alpn_protocols(["http/1.1"])
        mark = self.postern.log_size()
        raw = socket.create_connection((LOCALHOST, self.postern.port("imap")), timeout=10)
        with self.assertRaisesRegex(ssl.SSLError, "no application protocol"):
            context.wrap_socket(raw, server_hostname="mail.a.test")
        raw.close()
        self.assertEqual(self.session_line("imap", mark).get("end"), "tls_failed")

        context = self.pki.context()
        context.set_alpn_protocols(["imap"])
        m = ImapSni("mail.a.test", self.postern.port("imap"), ssl_context=context)
        try:
            self.assertEqual(m.sock.selected_alpn_protocol(), "imap")
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
        finally:
            m.logout()

        # STARTTLS: the upgrade on the plaintext port is refused the same way.
        c = LineClient(socket.create_connection((LOCALHOST, self.postern.port("imap_st")), 10))
        self.addCleanup(c.close)
        self.assertTrue(c.readline().startswith("* OK"))
        self.assertTrue(c.imap("a", "STARTTLS")[-1].startswith("a OK"))
        context = self.pki.context()
        context.set_alpn_protocols(["http/1.1"])
        with self.assertRaisesRegex(ssl.SSLError, "no application protocol"):
            c.starttls("mail.a.test", context)


if __name__ == "__main__":
    unittest.main()
