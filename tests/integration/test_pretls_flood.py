"""Before TLS postern answers CAPABILITY, CAPA and EHLO itself. A client that pipelines them
without reading the replies must not grow postern's memory: 20 such clients at once per
protocol, each sending as fast as postern takes bytes, cost less than 256 KiB each, are cut off
within plaintext_timeout, and a normal client logs in meanwhile. A client that keeps talking
(NOOP every half second, reading every reply) is still cut off plaintext_timeout after it
connected: the pre-TLS dialogue has an absolute deadline. Real Dovecot and Postfix behind.
"""

import select
import socket
import threading
import time
import unittest

from harness import (LOCALHOST, PASSWORD, SANITIZED, USER, ImapStarttls, IntegrationCase,
                     LineClient, rss_kib)

PLAINTEXT_TIMEOUT = 4.0
ATTACKERS = 20
PER_ATTACKER_KIB = 256
COMMANDS = {"imap": b"a CAPABILITY\r\n", "pop3": b"CAPA\r\n", "smtp": b"EHLO x\r\n"}


class Attackers:
    """ATTACKERS sockets that write `command` pipelined as fast as postern reads, never read,
    and note when each was cut off (a send fails: postern closed with the replies unread)."""

    def __init__(self, port: int, command: bytes):
        self.socks = []
        for _ in range(ATTACKERS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # replies pile up at postern
            s.connect((LOCALHOST, port))
            s.setblocking(False)
            self.socks.append(s)
        self.block = command * (65536 // len(command))
        self.started = time.monotonic()
        self.cut = {}      # socket -> seconds after the start
        self.sent = 0

    def run(self, bound: float, sample) -> None:
        while len(self.cut) < len(self.socks) and time.monotonic() - self.started < bound:
            live = [s for s in self.socks if s not in self.cut]
            _, writable, _ = select.select([], live, [], 0.1)
            for s in writable:
                try:
                    self.sent += s.send(self.block)
                except OSError:
                    self.cut[s] = time.monotonic() - self.started
            sample()

    def close(self) -> None:
        for s in self.socks:
            s.close()


class PreTlsFlood(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        # The normal client's backend connect shares two busy cores with the attackers.
        p.backend("imap", cls.dovecot.imap_address, connect_timeout="10s")
        p.backend("pop3", cls.dovecot.pop3_address, connect_timeout="10s")
        p.backend("smtp", cls.postfix.address, connect_timeout="10s")
        lim = {"tls": "starttls", "plaintext_timeout": f"{PLAINTEXT_TIMEOUT:g}s"}
        for proto in ("imap", "pop3", "smtp"):
            p.listener(proto, proto, proto, **lim)
        p.listener("imap_normal", "imap", "imap", tls="starttls")
        p.start()

    def login(self) -> None:
        m = ImapStarttls("mail.a.test", self.postern.port("imap_normal"), timeout=10)
        try:
            m.starttls(ssl_context=self.pki.context())
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
        finally:
            m.logout()

    def test_pipelining_without_reading_is_bounded(self):
        pid = self.postern.daemon.pid
        self.login()  # warm: worker buffers, the certificate, the backend path
        for proto, command in COMMANDS.items():
            with self.subTest(protocol=proto):
                before = rss_kib(pid)
                peak = [before]
                served, failures, slowest_login = [0], [], [0.0]
                stop = threading.Event()

                def normal_client():
                    while not stop.is_set():
                        try:
                            t = time.monotonic()
                            self.login()
                            slowest_login[0] = max(slowest_login[0], time.monotonic() - t)
                            served[0] += 1
                        except Exception as e:  # noqa: BLE001 - reported below
                            failures.append(repr(e))

                attack = Attackers(self.postern.port(proto), command)
                bystander = threading.Thread(target=normal_client)
                bystander.start()
                try:
                    attack.run(PLAINTEXT_TIMEOUT + 4,
                               lambda: peak.__setitem__(0, max(peak[0], rss_kib(pid))))
                finally:
                    stop.set()
                    bystander.join(30)
                    attack.close()
                growth = peak[0] - before
                print(f"\n{proto}: {attack.sent / 1e6:.1f} MB sent by {ATTACKERS} clients, "
                      f"postern RSS {before} KiB -> peak {peak[0]} KiB (+{growth} KiB, "
                      f"{growth / ATTACKERS:.0f} KiB per attacker); {served[0]} logins meanwhile, "
                      f"the slowest in {slowest_login[0]:.2f} s")
                if not SANITIZED:  # ASan's allocator keeps freed memory in quarantine
                    self.assertLess(growth, ATTACKERS * PER_ATTACKER_KIB,
                                    f"{attack.sent} bytes pipelined grew postern by {growth} KiB")
                self.assertEqual(len(attack.cut), ATTACKERS, "attackers still connected")
                slowest = max(attack.cut.values())
                self.assertLess(slowest, PLAINTEXT_TIMEOUT + 2, f"last attacker cut after {slowest:.1f} s")
                self.assertEqual(failures, [])
                self.assertGreater(served[0], 0)

    def test_talking_client_is_cut_off_plaintext_timeout_after_connecting(self):
        for proto in COMMANDS:
            with self.subTest(protocol=proto):
                started = time.monotonic()
                c = LineClient(socket.create_connection((LOCALHOST, self.postern.port(proto)), 5), 5)
                port = c.local_port
                c.readline()
                closed = False
                while time.monotonic() - started < PLAINTEXT_TIMEOUT + 3 and not closed:
                    try:
                        lines = (c.imap("a", "NOOP") if proto == "imap" else
                                 c.pop3_multiline("CAPA") if proto == "pop3" else c.smtp("NOOP"))
                        closed = lines[-1].startswith(("421", "-ERR", "* BYE"))
                    except (AssertionError, OSError):
                        closed = True  # the timeout's reply, then the close
                    if not closed:
                        time.sleep(0.5)  # the talker's pace, not an assertion
                elapsed = time.monotonic() - started
                c.close()
                self.assertTrue(closed, f"{proto}: still in plaintext after {elapsed:.1f} s")
                self.assertGreaterEqual(elapsed, PLAINTEXT_TIMEOUT - 0.5)
                fields = self.postern.session_end(port, proto)
                self.assertEqual(fields.get("end"), "timeout", fields["_line"])
                self.assertIn("plaintext_timeout", fields["_line"])


if __name__ == "__main__":
    unittest.main()
