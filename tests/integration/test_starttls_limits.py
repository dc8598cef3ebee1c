"""Limits and bad input before TLS on postern's STARTTLS listeners (fixture: starttls_case; the
*_lim listeners have plaintext_timeout = 1s and max_errors = 3): over-long lines, NUL bytes,
non-ASCII junk, a TLS ClientHello on the plaintext port, too many errors in a row and silent
clients end the session with the protocol's error, while a bystander session is unaffected.
(plaintext_timeout also ends a client that keeps talking, counted from its connection:
test_pretls_flood.py.)
"""

import ssl
import threading
import time
import unittest

from harness import PASSWORD, USER, ImapStarttls
from starttls_case import MAX_ERRORS, StartTlsCase, no_verify


class StartTlsLimits(StartTlsCase):
    # -- limits and bad input before TLS ------------------------------------------------

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


if __name__ == "__main__":
    unittest.main()
