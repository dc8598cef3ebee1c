"""Process lifecycle: SIGTERM stops postern promptly with exit code 0 (idle, and with a session
open), `postern run` refuses a broken config without listening, and several workers share the
sessions evenly."""

import signal
import socket
import time
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, ImapSni, IntegrationCase, LineClient, Pki,
                     Postern, listening_ports, run, POSTERN_BIN, require_postern)


class Lifecycle(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()

    def new_postern(self) -> Postern:
        p = self.own_for_test(Postern(self.workdir_for_test() / "postern", self.pki))
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.listener("smtp", "smtp", "imap")  # never used; a second listener to close
        return p.start()

    def sigterm(self, p: Postern, limit: float) -> tuple[int, float]:
        started = time.monotonic()
        p.daemon.send_signal(signal.SIGTERM)
        code = p.daemon.wait(limit)
        elapsed = time.monotonic() - started
        self.assertIsNotNone(code, f"postern still running {limit}s after SIGTERM")
        return code, elapsed

    def test_sigterm_idle_exits_zero(self):
        p = self.new_postern()
        m = ImapSni("mail.a.test", p.port("imap"), ssl_context=self.pki.context())
        m.logout()  # served one session first
        code, elapsed = self.sigterm(p, 5)
        self.assertEqual(code, 0)
        self.assertLess(elapsed, 5)
        self.assertFalse({p.port("imap"), p.port("smtp")} & listening_ports())

    def test_sigterm_with_open_session(self):
        p = self.new_postern()
        m = ImapSni("mail.a.test", p.port("imap"), ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        port = m.sock.getsockname()[1]
        silent = socket.create_connection((LOCALHOST, p.port("imap")), 5)  # mid-handshake client
        try:
            code, elapsed = self.sigterm(p, 10)
            self.assertEqual(code, 0)
            m.sock.settimeout(5)
            LineClient(m.sock).read_to_eof()  # closed (maybe after a * BYE); a hang raises
            fields = p.session_end(port, "imap", timeout=2)
            # ended politely once quiet (the drain), or cut if it was not quiet in time
            self.assertIn(fields.get("end"), ("drained", "shutdown"), fields["_line"])
        finally:
            silent.close()
            m.sock.close()

    def test_two_workers_even_out_their_sessions(self):
        """The kernel hashes connections onto the workers' SO_REUSEPORT sockets: 400 of them
        split within 1 of even about one time in eight. postern hands a new connection to the
        worker holding fewer sessions, so the split is even and every session is served."""
        p = self.own_for_test(Postern(self.workdir_for_test() / "postern", self.pki,
                                      log_level="debug"))
        p.server["workers"] = 2
        p.backend("imap", self.dovecot.imap_address)
        # A STARTTLS listener greets by itself: no backend connection before TLS.
        p.listener("imap", "imap", "imap", tls="starttls")
        p.start()
        count = 400
        clients = []
        try:
            for _ in range(count):
                c = LineClient(socket.create_connection((LOCALHOST, p.port("imap")), 5))
                clients.append(c)
                self.assertTrue(c.readline().startswith("* OK"), c.transcript)
            for i, c in enumerate(clients[-8:]):  # a few answer a command too
                self.assertEqual(c.imap(f"a{i}", "NOOP")[-1].split()[1], "OK", c.transcript)
            handed = p.text().count("handed over from worker")
            code, _ = self.sigterm(p, 10)
            self.assertEqual(code, 0)
            m = p.wait_log(r"draining (\d+) session\(s\) \(per worker: (\d+), (\d+)\)")
            total, first, second = map(int, m.groups())
            self.assertEqual(total, count, m.group(0))
            self.assertLessEqual(abs(first - second), 2, m.group(0))
            self.assertGreater(handed, 0, "no connection was handed to the other worker")
        finally:
            for c in clients:
                c.sock.close()

    def test_run_with_broken_config_exits_1(self):
        require_postern()
        d = self.workdir_for_test()
        p = Postern(d / "postern", self.pki)
        p.backend("imap", self.dovecot.imap_address)
        port = p.listener("imap", "imap", "no_such_backend")
        path = p.write_config()
        out = run([POSTERN_BIN, "run", "--config", path], timeout=10)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("listener[1].backend", out.stderr)
        self.assertNotIn(port, listening_ports())

    def test_run_and_check_refuse_a_config_without_listeners(self):
        # It would load, start, and accept nothing: an admin finds out from clients instead.
        require_postern()
        d = self.workdir_for_test()
        path = d / "nothing.toml"
        path.write_text('[server]\nlog_level = "info"\n')
        for command in ("run", "check"):
            out = run([POSTERN_BIN, command, "--config", path], timeout=10)
            self.assertEqual(out.returncode, 1, f"{command}: {out.stdout}{out.stderr}")
            self.assertIn(f"{path}: listener: no [[listener]] is defined", out.stderr, command)


if __name__ == "__main__":
    unittest.main()
