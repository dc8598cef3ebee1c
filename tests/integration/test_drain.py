"""Graceful drain (issue 14, point 4): on SIGTERM postern stops accepting at once, lets each
session finish what it is doing and ends it politely at its next quiet moment between commands
(IMAP `* BYE`, SMTP 421, POP3 a plain close), closes what is still busy when
server.shutdown_timeout passes, exits 0; a second SIGTERM closes everything at once. Real Postfix
and Dovecot behind postern; every wait is bounded.
"""

import re
import signal
import socket
import ssl
import time
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, IntegrationCase, LineClient, Pki, Postern,
                     Postfix, tls_connect, unique, wait_until)

SHUTDOWN_421 = "421 4.3.2 mail.drain.test Service shutting down"
IMAP_BYE = "* BYE [UNAVAILABLE] mail.drain.test shutting down"


class Drain(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix")).start()

    def new_postern(self, shutdown_timeout: str) -> Postern:
        p = self.own_for_test(Postern(self.workdir_for_test() / "postern", self.pki))
        p.server["hostname"] = "mail.drain.test"
        p.server["shutdown_timeout"] = shutdown_timeout
        p.backend("imap", self.dovecot.imap_address)
        p.backend("pop3", self.dovecot.pop3_address)
        p.backend("smtp", self.postfix.address)
        for proto in ("imap", "pop3", "smtp"):
            p.listener(proto, proto, proto)  # implicit TLS
        return p.start()

    def connect(self, p: Postern, listener: str) -> LineClient:
        c = LineClient(tls_connect(p.port(listener), "mail.a.test"))
        self.addCleanup(c.close)
        return c

    def imap_logged_in(self, p: Postern) -> LineClient:
        c = self.connect(p, "imap")
        self.assertTrue(c.readline().startswith("* OK"), c.transcript)
        self.assertIn(" OK ", c.imap("a1", f"LOGIN {USER} {PASSWORD}")[-1], c.transcript)
        return c

    def smtp_in_data(self, p: Postern, subject: str) -> LineClient:
        """An SMTP session that has had 354 and sent the first header lines."""
        c = self.connect(p, "smtp")
        self.assertRegex(c.smtp_reply()[-1], r"^220 ")
        self.assertRegex(c.smtp("EHLO client.c.test")[-1], r"^250 ")
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("DATA")[-1], r"^354 ")
        c.send(f"From: sender@c.test\r\nTo: test@a.test\r\nSubject: {subject}\r\n")
        return c

    def sigterm(self, p: Postern) -> float:
        started = time.monotonic()
        p.daemon.send_signal(signal.SIGTERM)
        p.wait_log(r"stopping on signal 15: no new connections; draining", 5)
        return started

    def assert_exits_zero(self, p: Postern, within: float):
        code = p.daemon.wait(within)
        self.assertIsNotNone(code, f"postern still running {within}s after the drain should end")
        self.assertEqual(code, 0)

    def test_slow_data_arrives_whole_then_421(self):
        """A message being sent when SIGTERM comes goes on to the end and is delivered whole;
        commands sent back to back after it are still relayed; once the client falls quiet it
        gets the 421, and postern exits 0."""
        p = self.new_postern("20s")
        subject = unique("drain")
        c = self.smtp_in_data(p, subject)
        c.send("")
        lines = [f"line {i:02d} of a message still being written" for i in range(14)]
        c.send(lines[0])
        self.sigterm(p)
        for line in lines[1:]:  # ~2.6 s, never quiet for 2 s
            time.sleep(0.2)
            c.send(line)
        c.send(".")
        self.assertRegex(c.smtp_reply()[-1], r"^250 ", c.transcript)
        c.send("MAIL FROM:<sender@c.test>")  # an active exchange goes on
        self.assertRegex(c.smtp_reply()[-1], r"^250 ", c.transcript)
        c.send("RSET")
        self.assertRegex(c.smtp_reply()[-1], r"^250 ", c.transcript)
        quiet = time.monotonic()
        c.sock.settimeout(5)
        self.assertEqual(c.read_to_eof().rstrip("\r\n"), SHUTDOWN_421, c.transcript)
        self.assertLess(time.monotonic() - quiet, 3.5, c.transcript)
        fields = p.session_end(c.local_port, "smtp", timeout=5)
        self.assertEqual(fields.get("end"), "drained", fields["_line"])
        self.assert_exits_zero(p, 5)
        body = self.postfix.wait_for_mail(subject).read_bytes().replace(b"\r\n", b"\n").decode()
        for line in lines:
            self.assertIn(line + "\n", body)

    def test_silent_sessions_end_politely_within_two_seconds(self):
        """IMAP in IDLE, IMAP idle after login, SMTP between commands, POP3 after login: each
        gets its protocol's goodbye about 2 s after SIGTERM at the latest, not at the timeout."""
        p = self.new_postern("30s")
        idle = self.imap_logged_in(p)
        self.assertIn(" OK ", idle.imap("a2", "SELECT INBOX")[-1], idle.transcript)
        idle.send("a3 IDLE")
        self.assertTrue(idle.readline().startswith("+ "), idle.transcript)
        quiet = self.imap_logged_in(p)
        smtp = self.connect(p, "smtp")
        self.assertRegex(smtp.smtp_reply()[-1], r"^220 ")
        self.assertRegex(smtp.smtp("EHLO client.c.test")[-1], r"^250 ")
        pop3 = self.connect(p, "pop3")
        self.assertTrue(pop3.readline().startswith("+OK"), pop3.transcript)
        pop3.send(f"USER {USER}")
        self.assertTrue(pop3.readline().startswith("+OK"), pop3.transcript)
        pop3.send(f"PASS {PASSWORD}")
        self.assertTrue(pop3.readline().startswith("+OK"), pop3.transcript)
        started = self.sigterm(p)
        for c, goodbye in ((idle, IMAP_BYE), (quiet, IMAP_BYE), (smtp, SHUTDOWN_421), (pop3, "")):
            c.sock.settimeout(5)
            # Dovecot's own IDLE keepalive may come just before the goodbye.
            text = re.sub(r"(?m)^\* OK Still here\r?\n", "", c.read_to_eof())
            self.assertEqual(text.rstrip("\r\n"), goodbye, c.transcript)
            self.assertLess(time.monotonic() - started, 4.5, c.transcript)
        for c, listener in ((idle, "imap"), (quiet, "imap"), (smtp, "smtp"), (pop3, "pop3")):
            fields = p.session_end(c.local_port, listener, timeout=5)
            self.assertEqual(fields.get("end"), "drained", fields["_line"])
        self.assert_exits_zero(p, 5)

    def test_new_connections_refused_while_draining(self):
        """The listeners close at once: a connection attempt is refused while a busy session
        still drains."""
        p = self.new_postern("20s")
        busy = self.smtp_in_data(p, unique("busy"))  # in DATA: not between commands
        self.sigterm(p)

        def refused():
            try:
                socket.create_connection((LOCALHOST, p.port("imap")), 1).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_until(refused, 2, "the IMAP listener refusing connections")
        self.assertTrue(p.daemon.alive(), "postern should still be draining the busy session")
        busy.send("\r\nbody\r\n.")
        self.assertRegex(busy.smtp_reply()[-1], r"^250 ", busy.transcript)
        busy.send("QUIT")  # a command after the drain began is still relayed
        self.assertRegex(busy.smtp_reply()[-1], r"^221 ", busy.transcript)
        self.assert_exits_zero(p, 5)

    def test_busy_client_closed_at_shutdown_timeout(self):
        """A client that never falls quiet (a NOOP every 0.5 s after login) is closed when
        shutdown_timeout (3 s) passes, with a BYE; postern then exits 0."""
        p = self.new_postern("3s")
        c = self.imap_logged_in(p)
        started = self.sigterm(p)
        closed_at = None
        n = 0
        while time.monotonic() - started < 8:
            n += 1
            try:
                c.send(f"n{n} NOOP")
                while True:
                    line = c.readline()
                    if not line or line.startswith(f"n{n} ") or line.startswith("* BYE"):
                        break
            except (OSError, ssl.SSLError):
                line = ""
            if not line or line.startswith("* BYE"):
                closed_at = time.monotonic() - started
                break
            time.sleep(0.5)
        self.assertIsNotNone(closed_at, c.transcript)
        self.assertGreater(closed_at, 2.5, c.transcript)
        self.assertLess(closed_at, 5, c.transcript)
        fields = p.session_end(c.local_port, "imap", timeout=5)
        self.assertEqual(fields.get("end"), "shutdown", fields["_line"])
        self.assert_exits_zero(p, 3)

    def test_second_sigterm_closes_at_once(self):
        p = self.new_postern("30s")
        busy = self.smtp_in_data(p, unique("second"))
        self.sigterm(p)
        started = time.monotonic()
        p.daemon.send_signal(signal.SIGTERM)
        busy.sock.settimeout(5)
        text = busy.read_to_eof()
        self.assertLess(time.monotonic() - started, 2, busy.transcript)
        self.assertEqual(text.rstrip("\r\n"), SHUTDOWN_421, busy.transcript)
        self.assert_exits_zero(p, 3)
        fields = p.session_end(busy.local_port, "smtp", timeout=2)
        self.assertEqual(fields.get("end"), "shutdown", fields["_line"])


if __name__ == "__main__":
    unittest.main()
