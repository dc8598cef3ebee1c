"""SMTP framing through postern against real Postfix 3.7 (issue 13, defect 6): where DATA ends and
whether BDAT may be sent, so that postern and the backend always agree on what is a command.

- Postfix 3.7 (smtpd_forbid_bare_newline = no, Debian 12's default) ends DATA at "\\n.\\n"; postern
  passes content on with bare LF as CRLF and dot-stuffs a "." line that is not CRLF.CRLF, so the
  commands a client hides after "\\n.\\n" stay content at Postfix too: one message, not two.
- BDAT reaches only a backend whose EHLO reply offered CHUNKING; otherwise postern answers 502 and
  drops the chunk, and the backend never sees it.

Each test first shows the backend's own behaviour directly (the control), and a RecordingRelay
between postern and Postfix shows what Postfix received and answered.
"""

import socket
import unittest

from harness import (IntegrationCase, LOCALHOST, LineClient, Pki, Postern, Postfix, RecordingRelay,
                     free_port, tls_connect, unique, wait_until)

NOT_IMPLEMENTED = "502 5.5.1 Error: command not implemented\r\n"


def smuggling(first: str, second: str) -> bytes:
    """A message whose body hides a second transaction after a bare-LF dot."""
    return (f"Subject: {first}\r\n\r\nbody\n.\nMAIL FROM:<evil@c.test>\r\nRCPT TO:<test@a.test>\r\n"
            f"DATA\r\nSubject: {second}\r\n\r\nsmuggled\r\n.\r\n").encode()


class SmtpFraming(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.postfix = Postfix(cls.tmp / "postfix")
        # A second smtpd that does not offer CHUNKING (as a backend without RFC 3030 would not).
        cls.no_chunking_port = free_port()
        with open(cls.postfix.etc / "master.cf", "a") as f:
            f.write(f"127.0.0.1:{cls.no_chunking_port} inet n - n - - smtpd\n"
                    "  -o smtpd_discard_ehlo_keywords=chunking\n")
        cls.own(cls.postfix).start()
        wait_until(lambda: cls.connectable(cls.no_chunking_port), 30, "postfix's second smtpd")
        cls.relays = {
            "chunking": cls.own(RecordingRelay(cls.tmp / "relay-c", cls.postfix.address, "relay-c")).start(),
            "plain": cls.own(RecordingRelay(cls.tmp / "relay-p", f"{LOCALHOST}:{cls.no_chunking_port}",
                                            "relay-p")).start(),
        }
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        for name, relay in cls.relays.items():
            p.backend(name, relay.address)
            p.listener(name, "smtp", name)  # implicit TLS (465)
        p.start()

    @staticmethod
    def connectable(port: int) -> bool:
        try:
            socket.create_connection((LOCALHOST, port), 1).close()
            return True
        except OSError:
            return False

    def client(self, listener: str) -> LineClient:
        c = LineClient(tls_connect(self.postern.port(listener), "mail.a.test"))
        self.addCleanup(c.close)
        self.assertRegex(c.smtp_reply()[-1], r"^220 ")
        return c

    def direct(self, port: int) -> LineClient:
        c = LineClient(socket.create_connection((LOCALHOST, port), 5))
        self.addCleanup(c.close)
        self.assertRegex(c.smtp_reply()[-1], r"^220 ")
        return c

    def one_connection(self, relay: str, since: int) -> RecordingRelay.Connection:
        """The relay's one connection since the mark, once closed (its record is complete)."""
        r = self.relays[relay]

        def closed():
            conns = r.connections(since)
            return conns if len(conns) == 1 and conns[0].closed.is_set() else None
        return wait_until(closed, 10, f"the closed connection through {relay}")[0]

    def headers_subject(self, subject: str) -> bool:
        """A delivered mail whose header (not its body) has this Subject."""
        needle = f"\nSubject: {subject}\n".encode()
        for sub in ("new", "cur"):
            folder = self.postfix.maildir() / sub
            for f in folder.iterdir() if folder.is_dir() else ():
                head = f.read_bytes().replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
                if needle in b"\n" + head + b"\n":
                    return True
        return False

    def transaction(self, c: LineClient) -> None:
        self.assertRegex(c.smtp("EHLO client.c.test")[-1], r"^250 ")
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")

    def test_bare_lf_dot_does_not_end_data(self):
        # The control: Postfix itself ends DATA at "\n.\n" and takes the rest as a transaction.
        first, second = unique("lf-direct-1"), unique("lf-direct-2")
        d = self.direct(self.postfix.port)
        self.transaction(d)
        self.assertRegex(d.smtp("DATA")[-1], r"^354 ")
        d.sock.sendall(smuggling(first, second))
        replies = [d.smtp_reply()[-1][:3] for _ in range(5)]
        self.assertEqual(replies, ["250", "250", "250", "354", "250"], d.transcript)
        d.smtp("QUIT")
        wait_until(lambda: self.headers_subject(second), 20, "the smuggled mail, sent directly")

        # Through postern: one message, its body holding the would-be transaction.
        first, second = unique("lf-postern-1"), unique("lf-postern-2")
        mark = self.relays["chunking"].mark()
        c = self.client("chunking")
        self.transaction(c)
        self.assertRegex(c.smtp("DATA")[-1], r"^354 ")
        c.sock.sendall(smuggling(first, second))
        self.assertRegex(c.smtp_reply()[-1], r"^250 .*queued")
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        mail = self.postfix.wait_for_mail(first)
        body = mail.read_bytes().replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
        self.assertIn(b"\nMAIL FROM:<evil@c.test>\nRCPT TO:<test@a.test>\nDATA\nSubject: " +
                      second.encode() + b"\n", body)
        conn = self.one_connection("chunking", mark)
        # Postfix queued exactly one message on this connection: no second transaction.
        self.assertEqual(bytes(conn.to_client).count(b"queued as"), 1, bytes(conn.to_client))
        self.assertNotIn(b"\n.\n", bytes(conn.to_backend))
        self.assertFalse(self.headers_subject(second), "the smuggled message was delivered")

    def test_bdat_without_chunking_is_refused_by_postern(self):
        # The control: this smtpd does not offer CHUNKING.
        d = self.direct(self.no_chunking_port)
        ehlo = d.smtp("EHLO client.c.test")
        self.assertNotIn("CHUNKING", "".join(ehlo).upper())
        d.smtp("QUIT")

        mark = self.relays["plain"].mark()
        c = self.client("plain")
        self.transaction(c)
        chunk = b"RSET\r\nMAIL FROM:<evil@c.test>\r\nRCPT TO:<test@a.test>\r\n"
        c.sock.sendall(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertEqual(c.smtp_reply(), [NOT_IMPLEMENTED])
        self.assertRegex(c.smtp("NOOP")[-1], r"^250 ")  # the next reply is NOOP's: in step
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        sent = bytes(self.one_connection("plain", mark).to_backend)
        self.assertIn(b"RCPT TO:<test@a.test>\r\nNOOP\r\nQUIT\r\n", sent)
        self.assertNotIn(b"BDAT", sent)
        self.assertNotIn(b"evil", sent)

    def test_bdat_with_chunking_is_relayed(self):
        subject = unique("bdat")
        c = self.client("chunking")
        self.assertIn("CHUNKING", "".join(c.smtp("EHLO client.c.test")).upper())
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")
        content = f"Subject: {subject}\r\n\r\nSTARTTLS\r\n.\r\n".encode()
        c.sock.sendall(b"BDAT %d LAST\r\n" % len(content) + content)
        self.assertRegex(c.smtp_reply()[-1], r"^250 ")
        self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        self.postfix.wait_for_mail(subject)


if __name__ == "__main__":
    unittest.main()
