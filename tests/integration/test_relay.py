"""Bulk data through the relay: a 16 MB IMAP message fetched by a client that reads slowly
arrives byte for byte while postern's memory stays bounded (back-pressure) and other clients
are served; a 6 MB message submitted over SMTP lands intact in Postfix's maildir. Real Dovecot
and Postfix behind postern; Python's ssl, imaplib and smtplib as clients."""

import hashlib
import re
import socket
import time
import unittest

from harness import (LOCALHOST, PASSWORD, SANITIZED, USER, ImapSni, IntegrationCase, SmtpSni,
                     message, rss_kib, unique)

# A read stops once this much is unread on the client side: postern's buffers plus the kernel's
# socket buffers on both legs are all that may fill meanwhile.
SLOW_CHUNK = 64 * 1024
# postern reads a side only while the other side's 32 KiB buffer has room. Growth is checked
# against this bound: far below the 16 MB an unbounded relay would pull in from Dovecot.
RSS_GROWTH_LIMIT_KIB = 4 * 1024


def body_lines(total: int, seed: str) -> bytes:
    """Deterministic printable text of about `total` bytes in 76-character CRLF lines."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).hexdigest()
    while len(out) < total:
        block = hashlib.sha256(block.encode()).hexdigest()
        out += (block + block)[:76].encode() + b"\r\n"
    return bytes(out)


class BulkRelay(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("smtp", cls.postfix.address)
        p.listener("imap", "imap", "imap")
        p.listener("smtp", "smtp", "smtp")
        p.start()

    def imap_works(self) -> None:
        m = ImapSni("mail.a.test", self.postern.port("imap"), ssl_context=self.pki.context())
        try:
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
        finally:
            m.logout()

    def test_large_fetch_to_a_slow_reader(self):
        subject = unique("bulk")
        body = body_lines(16 * 1024 * 1024, subject)
        self.dovecot.seed(message(subject, body="")[:-2] + body)
        context = self.pki.context()
        raw = socket.create_connection((LOCALHOST, self.postern.port("imap")), timeout=20)
        tls = context.wrap_socket(raw, server_hostname="mail.a.test")
        reader = tls.makefile("rb", buffering=0)

        def line() -> bytes:
            out = bytearray()
            while not out.endswith(b"\r\n"):
                b = reader.read(1)
                self.assertTrue(b, "connection closed")
                out += b
            return bytes(out)

        def tagged(tag: bytes) -> bytes:
            while True:
                got = line()
                if got.startswith(tag + b" "):
                    return got

        line()  # greeting
        tls.sendall(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
        self.assertIn(b"OK", tagged(b"a"))
        tls.sendall(b"b SELECT INBOX\r\n")
        self.assertIn(b"OK", tagged(b"b"))
        tls.sendall(f'c UID SEARCH SUBJECT "{subject}"\r\n'.encode())
        uids = re.findall(rb"\d+", line().split(b"SEARCH", 1)[1])
        self.assertIn(b"OK", tagged(b"c"))
        self.assertEqual(len(uids), 1, uids)

        pid = self.postern.daemon.pid
        before = rss_kib(pid)
        tls.sendall(b"d UID FETCH " + uids[0] + b" BODY[TEXT]\r\n")
        head = line()
        size = int(re.search(rb"\{(\d+)\}\r\n$", head).group(1))
        self.assertEqual(size, len(body))
        got = hashlib.sha256()
        left, peak, served_meanwhile = size, before, False
        while left:
            chunk = reader.read(min(SLOW_CHUNK, left))
            self.assertTrue(chunk, "connection closed during the literal")
            got.update(chunk)
            left -= len(chunk)
            peak = max(peak, rss_kib(pid))
            if not served_meanwhile and left < size // 2:
                self.imap_works()  # another client, while this one holds a paused relay
                served_meanwhile = True
            time.sleep(0.005)
        self.assertEqual(got.hexdigest(), hashlib.sha256(body).hexdigest())
        self.assertIn(b"OK", tagged(b"d"))
        tls.sendall(b"e LOGOUT\r\n")
        tls.close()
        self.assertTrue(served_meanwhile)
        if not SANITIZED:  # ASan's allocator keeps freed memory in quarantine
            self.assertLess(peak - before, RSS_GROWTH_LIMIT_KIB,
                            f"postern grew from {before} to {peak} KiB while relaying {size} bytes")

    def test_large_submission_arrives_intact(self):
        subject = unique("bulk-smtp")
        body = body_lines(6 * 1024 * 1024, subject)
        s = SmtpSni("mail.a.test", self.postern.port("smtp"), context=self.pki.context(),
                    timeout=60)
        self.assertEqual(s.sendmail("sender@c.test", ["test@a.test"],
                                    message(subject, body="")[:-2] + body), {})
        s.quit()
        delivered = self.postfix.wait_for_mail(subject, timeout=60).read_bytes()
        stored = delivered.replace(b"\r\n", b"\n")
        self.assertIn(body.replace(b"\r\n", b"\n"), stored)


if __name__ == "__main__":
    unittest.main()
