"""Command injection and failed handshakes on postern's STARTTLS listeners (fixture:
starttls_case): bytes pipelined after STARTTLS/STLS are discarded, never answered nor sent to the
backend (proved with a RecordingRelay and Dovecot's log) for IMAP, POP3 and SMTP; a client that
goes on in plaintext after the go-ahead, or offers too old a TLS version, fails the handshake
and postern logs why.
"""

import re
import socket
import ssl
import unittest

from harness import PASSWORD, USER, ImapStarttls, LineClient, wait_until
from starttls_case import BACKEND_SMTP_NAME, StartTlsCase, no_verify, recv_until


class StartTlsInjection(StartTlsCase):
    # -- command injection: bytes pipelined after STARTTLS are discarded ----------------

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

    # -- failed handshakes after STARTTLS -----------------------------------------------

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
