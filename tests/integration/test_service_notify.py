"""The service manager's notifications (systemd Type=notify / notify-reload), without systemd.

The test plays the manager: it binds an AF_UNIX datagram socket (a path in the temp dir, or an
abstract "@name"), starts postern with NOTIFY_SOCKET naming it and reads what sd_notify sends.
READY=1 (with STATUS=) comes first and only once every listener accepts and an IMAPS login
works; a reload by SIGHUP, by a certificate file changing, or failing on a broken certificate
is framed by RELOADING=1 (MONOTONIC_USEC on the test's own CLOCK_MONOTONIC) and READY=1; STATUS=
counts an open session; SIGTERM sends STOPPING=1 before the process exits. Every wait is a
bounded receive. Without NOTIFY_SOCKET the other integration tests run postern as before.
"""

import itertools
import os
import shutil
import signal
import socket
import time
from typing import Callable, Optional

from harness import LOCALHOST, PASSWORD, USER, Dovecot, ImapSni, IntegrationCase, Pki, Postern

STATUS_RX = r"^\d+ sessions?, \d+ certificates?"


class Manager:
    """The service manager's end of NOTIFY_SOCKET: each datagram as a dict of its assignments."""

    def __init__(self, address: str):
        self.address = address  # as NOTIFY_SOCKET says it: a path, or "@name" (abstract)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[dict[str, str]] = []

    def close(self) -> None:
        self.sock.close()

    def next(self, timeout: float) -> dict[str, str]:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"no notification within {timeout} s; so far: {self.received}")
        message = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.received.append(message)
        return message

    def wait(self, predicate: Callable[[dict], bool], timeout: float, what: str) -> dict[str, str]:
        """The first message from now on that satisfies predicate, within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout} s; so far: {self.received}")
            message = self.next(left)
            if predicate(message):
                return message


def monotonic_s() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class ServiceNotifyTest(IntegrationCase):
    """One Dovecot for the class; each test its own manager socket, certificates and postern."""

    sockets = itertools.count()  # socket paths in the class's folder: sun_path holds 108 bytes

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.pki.add("n", ["mail.n.test"], 34)
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()

    def setUp(self):
        super().setUp()
        self.work = self.workdir_for_test()
        # A certificate the test may rewrite or break, outside the shared Pki.
        self.certs = self.work / "certs"
        self.certs.mkdir()
        shutil.copy(self.pki.crt("n"), self.certs / "n.crt")
        shutil.copy(self.pki.key("n"), self.certs / "n.key")

    def start(self, address: Optional[str] = None) -> Manager:
        manager = Manager(address or str(self.tmp / f"notify{next(self.sockets)}.sock"))
        self.addCleanup(manager.close)
        p = self.postern = self.own_for_test(Postern(self.work / "postern", self.pki,
                                                     env={"NOTIFY_SOCKET": manager.address}))
        p.extra_certificates = [(self.certs / "n.crt", self.certs / "n.key")]
        p.backend("imap", self.dovecot.imap_address)
        p.backend("pop3", self.dovecot.pop3_address)
        p.listener("imaps", "imap", "imap")
        p.listener("pop3s", "pop3", "pop3")
        p.listener("imap", "imap", "imap", tls="starttls")
        p.start(wait=False)  # the manager's READY=1 is the sign, not the ports
        return manager

    def ready(self, manager: Manager) -> dict[str, str]:
        first = manager.next(20)
        self.assertEqual(first.get("READY"), "1", first)
        self.assertRegex(first.get("STATUS", ""), STATUS_RX)
        return first

    def login(self) -> ImapSni:
        m = ImapSni("mail.a.test", self.postern.port("imaps"), ssl_context=self.pki.context())
        m.login(USER, PASSWORD)
        return m

    def reload_framed(self, manager: Manager, before: float) -> dict[str, str]:
        """RELOADING=1 stamped between `before` and now (CLOCK_MONOTONIC), then READY=1."""
        reloading = manager.wait(lambda m: "RELOADING" in m, 10, "RELOADING=1")
        self.assertEqual(reloading["RELOADING"], "1")
        stamp = int(reloading["MONOTONIC_USEC"]) / 1e6
        self.assertGreaterEqual(stamp, before - 2)
        self.assertLessEqual(stamp, monotonic_s() + 2)
        self.assertIn("reloading certificates", reloading.get("STATUS", ""))
        done = manager.next(10)
        self.assertEqual(done.get("READY"), "1", done)
        self.assertRegex(done.get("STATUS", ""), STATUS_RX)
        return done

    def test_ready_once_every_listener_accepts_and_a_login_works(self):
        manager = self.start()
        first = self.ready(manager)
        self.assertEqual(first["STATUS"], "0 sessions, 5 certificates")  # Pki.CERTS and n.crt
        for name in self.postern.listeners:
            socket.create_connection((LOCALHOST, self.postern.port(name)), 5).close()
        m = self.login()
        m.logout()

    def test_abstract_socket_address(self):
        manager = self.start(f"@postern-test-{os.getpid()}-{time.monotonic_ns()}")
        self.ready(manager)
        self.login().logout()

    def test_sighup_reload_is_framed_by_reloading_and_ready(self):
        manager = self.start()
        self.ready(manager)
        before = monotonic_s()
        self.postern.daemon.send_signal(signal.SIGHUP)
        done = self.reload_framed(manager, before)
        self.assertNotIn("failed", done["STATUS"])

    def test_certificate_file_change_is_framed_too(self):
        manager = self.start()
        self.ready(manager)
        before = monotonic_s()
        (self.certs / "n.crt").write_bytes(self.pki.crt("n").read_bytes())  # certbot renews
        reloading = manager.wait(lambda m: "RELOADING" in m, 10, "RELOADING=1")
        self.assertIn("a certificate file changed", reloading["STATUS"])
        self.assertGreaterEqual(int(reloading["MONOTONIC_USEC"]) / 1e6, before - 2)
        self.assertLessEqual(int(reloading["MONOTONIC_USEC"]) / 1e6, monotonic_s() + 2)
        done = manager.next(10)
        self.assertEqual(done.get("READY"), "1", done)
        self.assertNotIn("failed", done["STATUS"])

    def test_broken_certificate_reload_ends_ready_with_the_failure_in_status(self):
        manager = self.start()
        self.ready(manager)
        (self.certs / "n.crt").write_text("not a certificate\n")
        before = monotonic_s()
        self.postern.daemon.send_signal(signal.SIGHUP)
        done = self.reload_framed(manager, before)
        self.assertIn("reload failed: ", done["STATUS"])
        self.assertIn("n.crt", done["STATUS"])
        self.assertTrue(done["STATUS"].startswith("0 sessions, 5 certificates;"), done)
        self.login().logout()  # the previous certificates still serve
        # Mended: the next reload clears the failure.
        shutil.copy(self.pki.crt("n"), self.certs / "n.crt")
        self.postern.daemon.send_signal(signal.SIGHUP)
        mended = manager.wait(lambda m: m.get("READY") == "1", 10, "READY=1 after mending")
        self.assertEqual(mended["STATUS"], "0 sessions, 5 certificates")

    def test_status_counts_an_open_session(self):
        manager = self.start()
        self.ready(manager)
        m = self.login()
        try:
            # The STATUS timer runs every 5 s: one refresh at most away.
            status = manager.wait(lambda msg: "STATUS" in msg and "READY" not in msg, 8,
                                  "STATUS= update")
            self.assertRegex(status["STATUS"], r"^1 sessions?, 5 certificates$")
        finally:
            m.logout()
        status = manager.wait(lambda msg: "STATUS" in msg, 8, "STATUS= update after logout")
        self.assertEqual(status["STATUS"], "0 sessions, 5 certificates")

    def test_sigterm_sends_stopping_then_exits(self):
        manager = self.start()
        self.ready(manager)
        self.postern.daemon.send_signal(signal.SIGTERM)
        stopping = manager.wait(lambda m: "STOPPING" in m, 10, "STOPPING=1")
        self.assertEqual(stopping["STOPPING"], "1")
        self.assertTrue(stopping.get("STATUS", "").startswith("stopping"), stopping)
        self.assertEqual(self.postern.daemon.wait(15), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
