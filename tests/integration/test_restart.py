"""Replacing a running postern refuses no connection: on SIGUSR2 it starts its own binary again,
hands the new process its listening sockets (LISTEN_FDS), and once that one is ready stops
accepting and drains. Clients log in and fetch back to back through three replacements; every
one of them must succeed. Also: socket activation as a service manager does it (the sockets are
made by the test, a connection queued before postern starts is served), and a replacement that
cannot start leaves the old process serving."""

import ctypes
import os
import re
import signal
import socket
import threading
import time
import unittest

from harness import (LOCALHOST, PASSWORD, POSTERN_BIN, USER, Dovecot, ImapSni, IntegrationCase,
                     Pki, Postern, WaitTimeout, free_port, message, unique, wait_until)

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (a replacement outliving the process that started it) are
    reparented to this process, so the test can wait for them by pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def wait_exit(pid: int, timeout: float) -> int:
    """Exit status of a child (or adopted orphan) pid; raises if still running after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still running after {timeout}s")
        time.sleep(0.05)


class ClientLoop:
    """Threads that log in, select, fetch one message and log out, back to back, counting every
    attempt and keeping each failure's text. Bounded in count and time."""

    def __init__(self, port: int, context, subject: str, threads: int = 2,
                 max_attempts: int = 20000, max_seconds: float = 120.0):
        self.port, self.context, self.subject = port, context, subject
        self.ok = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.max_attempts, self.deadline = max_attempts, time.monotonic() + max_seconds
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(threads)]

    def start(self) -> "ClientLoop":
        for t in self.threads:
            t.start()
        return self

    def one(self) -> None:
        m = ImapSni("mail.a.test", self.port, ssl_context=self.context, timeout=20)
        try:
            if m.login(USER, PASSWORD)[0] != "OK" or m.select("INBOX")[0] != "OK":
                raise AssertionError("login or select refused")
            typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            if typ != "OK" or self.subject.encode() not in data[0][1]:
                raise AssertionError(f"fetch: {typ} {data!r}")
        except BaseException:
            m.shutdown()
            raise
        m.logout()

    def loop(self) -> None:
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.ok + len(self.failures) >= self.max_attempts:
                    return
            try:
                self.one()
                with self.lock:
                    self.ok += 1
            except Exception as e:  # every kind of failure counts: refused, reset, TLS, IMAP
                with self.lock:
                    self.failures.append(f"{type(e).__name__}: {e}")

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)

    def count(self) -> int:
        with self.lock:
            return self.ok


class Replacement(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        become_subreaper()
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.subject = unique("restart")
        cls.dovecot.seed(message(cls.subject))

    def new_postern(self, workers: int = 2) -> Postern:
        p = self.own_for_test(Postern(self.workdir_for_test() / "postern", self.pki))
        p.server["workers"] = workers
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.listener("imap2", "imap", "imap", tls="starttls")
        return p.start()

    def replace(self, p: Postern, pid: int, since: int) -> int:
        """SIGUSR2 to pid; returns the new process's pid once the old one has exited 0."""
        os.kill(pid, signal.SIGUSR2)
        m = p.wait_log(r"^.*replacement process (\d+) is ready.*$", 30, since)
        new_pid = int(m.group(1))
        code = p.daemon.wait(30) if pid == p.daemon.pid else wait_exit(pid, 30)
        self.assertEqual(code, 0, f"the replaced process {pid} exited with {code}")
        return new_pid

    def wait_sessions(self, loop: ClientLoop, more: int) -> None:
        before = loop.count()
        try:
            wait_until(lambda: loop.count() >= before + more, 30, f"{more} more sessions")
        except WaitTimeout:
            self.fail(f"{more} more sessions not done in 30 s; failures: {loop.failures[:3]}")

    def test_three_replacements_refuse_no_connection(self):
        p = self.new_postern()
        loop = ClientLoop(p.port("imap"), self.pki.context(), self.subject).start()
        started = time.monotonic()
        pids = [p.daemon.pid]
        try:
            for _ in range(3):
                before = loop.count()
                self.wait_sessions(loop, 20)
                pids.append(self.replace(p, pids[-1], p.log_size()))
            self.wait_sessions(loop, 20)
        finally:
            loop.stop()
            elapsed = time.monotonic() - started
            for pid in pids[1:]:  # the last one is still running
                try:
                    os.kill(pid, signal.SIGTERM)
                    wait_exit(pid, 15)
                except (ProcessLookupError, ChildProcessError):
                    pass
        print(f"\nrestart test: {loop.ok + len(loop.failures)} sessions in {elapsed:.1f} s through "
              f"3 replacements (pids {pids}), {len(loop.failures)} failed")
        self.assertEqual(loop.failures, [], f"{len(loop.failures)} of "
                         f"{loop.ok + len(loop.failures)} sessions failed")
        self.assertGreaterEqual(loop.ok, 80)
        text = p.log_text()
        self.assertEqual(len(re.findall(r"took over 4 listening socket\(s\) from the process this "
                                        r"one replaces", text)), 3, text[-3000:])

    def test_sigusr2_while_draining_is_ignored(self):
        """Its listeners are closed once the drain starts: nothing is left to hand over."""
        p = self.new_postern(workers=1)
        m = ImapSni("mail.a.test", p.port("imap"), ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")  # keeps the drain going
        p.daemon.send_signal(signal.SIGTERM)
        p.wait_log(r"draining 1 session")
        os.kill(p.daemon.pid, signal.SIGUSR2)
        p.wait_log(r"SIGUSR2: ignored: this process is stopping", 10)
        self.assertEqual(p.daemon.wait(15), 0)  # the quiet session is ended within 2 s
        self.assertNotIn("starting a replacement", p.log_text())
        m.shutdown()

    def test_failed_replacement_keeps_serving(self):
        p = self.new_postern(workers=1)
        since = p.log_size()
        # The replacement reads the config again: a broken one makes it exit before it is ready.
        p.config.write_text(p.config.read_text() + "\n[broken\n")
        os.kill(p.daemon.pid, signal.SIGUSR2)
        p.wait_log(r"^.*replacement process \d+ exited with status 1 before it was ready.*$",
                   30, since)
        m = ImapSni("mail.a.test", p.port("imap"), ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        self.assertTrue(p.daemon.alive())

    @unittest.skipUnless(os.geteuid() == 0, "server.user needs root")
    def test_replacement_under_server_user(self):
        """Under server.user the unprivileged process cannot start a process that binds and
        reads as root: its privileged helper does, with the listening sockets handed to it. The
        new process drops to server.user in its turn, and serves."""
        p = self.own_for_test(Postern(self.workdir_for_test() / "postern", self.pki))
        p.server["user"] = "nobody"
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.start()
        since = p.log_size()
        new_pid = self.replace(p, p.daemon.pid, since)
        try:
            text = p.log_text()[since:]
            self.assertRegex(text, r"starting a replacement: .* through the privileged helper")
            self.assertRegex(text, r"took over 1 listening socket\(s\) from the process this one "
                             r"replaces")
            with open(f"/proc/{new_pid}/status") as f:
                uids = next(l for l in f if l.startswith("Uid:")).split()[1:]
            self.assertNotIn("0", uids)
            m = ImapSni("mail.a.test", p.port("imap"), ssl_context=self.pki.context())
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            m.logout()
        finally:
            os.kill(new_pid, signal.SIGTERM)
            self.assertEqual(wait_exit(new_pid, 15), 0)


class SocketActivation(IntegrationCase):
    """postern started as systemd's socket activation starts it: listening sockets on fd 3 and
    up, LISTEN_FDS and LISTEN_PID (the test plays the manager)."""

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()

    def activate(self, p: Postern, sockets: list[int]) -> int:
        """Starts postern with `sockets` (descriptors of this process) on fd 3, 4, ...; pid."""
        p.write_config()
        log = os.open(p.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        pid = os.fork()
        if pid == 0:  # the manager's child: move the sockets to 3.., set LISTEN_PID, exec
            try:
                high = [os.dup2(fd, 100 + i) for i, fd in enumerate(sockets)]
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i)
                for fd in high:
                    os.close(fd)
                os.dup2(log, 1)
                os.dup2(log, 2)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.setsid()
                env = dict(os.environ, LISTEN_FDS=str(len(sockets)), LISTEN_PID=str(os.getpid()))
                os.closerange(3 + len(sockets), 100)
                os.execve(str(POSTERN_BIN), [str(POSTERN_BIN), "run", "--config", str(p.config)],
                          env)
            finally:
                os._exit(127)
        os.close(log)
        self.addCleanup(self.kill, pid)
        return pid

    def kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def listening_socket(self, port: int) -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOCALHOST, port))
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def test_inherited_socket_serves_a_connection_queued_before_start(self):
        p = Postern(self.workdir_for_test() / "postern", self.pki)
        p.backend("imap", self.dovecot.imap_address)
        port = p.listener("imap", "imap", "imap")
        sock = self.listening_socket(port)
        spare = self.listening_socket(free_port())  # matches no listener: closed with a warning
        # Connected before postern exists: the kernel queues it on the manager's socket.
        early = socket.create_connection((LOCALHOST, port), 10)
        early.close()
        m_sock = socket.create_connection((LOCALHOST, port), 10)
        pid = self.activate(p, [sock.fileno(), spare.fileno()])
        sock.close()  # only postern holds it now
        p.wait_log(r"^.*took over 1 listening socket\(s\) from the service manager.*$", 15)
        p.wait_log(r"^.*inherited listening socket 127\.0\.0\.1:\d+ matches no listener; "
                   r"closed.*$", 5)
        ctx = self.pki.context()
        tls = ctx.wrap_socket(m_sock, server_hostname="mail.a.test")
        tls.settimeout(10)
        self.assertTrue(tls.recv(200).startswith(b"* OK"))
        tls.close()
        m = ImapSni("mail.a.test", port, ssl_context=ctx)
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        os.kill(pid, signal.SIGTERM)
        self.assertEqual(wait_exit(pid, 15), 0)

    def test_inherited_descriptor_that_is_not_a_listening_socket(self):
        p = Postern(self.workdir_for_test() / "postern", self.pki)
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        pid = self.activate(p, [a.fileno()])
        self.assertEqual(wait_exit(pid, 15), 1)
        self.assertIn("inherited descriptor 3: not listening", p.log_text())


if __name__ == "__main__":
    unittest.main()
