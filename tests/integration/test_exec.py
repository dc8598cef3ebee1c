"""Exec backends (UCSPI, as tcpserver runs qmail): postern runs servers/ucspi_env.py once per
session with the session on its fds 0 and 1, and the program reports what it was given. The
client connects from 127.0.0.2, so the address the program learns is the client's, not
postern's own. Also: the program as another user, its stderr in postern's log (rate-limited),
a program that exits before its greeting or cannot be started (the client gets the protocol's
error), and no zombie left: after ordinary sessions, after a program that ignores SIGTERM
(SIGKILL 5 s later) and at postern's shutdown."""

import os
import re
import select
import shutil
import socket
import ssl
import struct
import time
import unittest

from harness import (IntegrationCase, LOCALHOST, LineClient, Pki, Postern, SERVERS, no_verify,
                     run, wait_until)

CLIENT_IP = "127.0.0.2"


def connect_from(port: int, source: str = CLIENT_IP, host: str = LOCALHOST) -> socket.socket:
    """A plaintext connection to postern from `source` (bound explicitly)."""
    return socket.create_connection((host, port), timeout=10, source_address=(source, 0))


def tls_from(port: int, sni, source: str = CLIENT_IP) -> ssl.SSLSocket:
    return no_verify().wrap_socket(connect_from(port, source), server_hostname=sni)


def env_of(c: LineClient) -> dict:
    lines = c.smtp("ENV")
    assert lines[-1].startswith("250 end"), lines
    return dict(line[4:].rstrip("\r\n").partition("=")[::2] for line in lines[:-1])


def children(pid: int) -> list:
    """(pid, stat) of every child of process `pid`."""
    out = run(["ps", "--ppid", str(pid), "-o", "pid=,stat="], timeout=10).stdout
    return [(int(p), s) for p, s in (line.split() for line in out.splitlines() if line.strip())]


def reset(c: LineClient) -> None:
    """Closes the connection with a TCP RST (SO_LINGER 0): the client vanishes, no FIN."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def greeting_pid(c: LineClient) -> int:
    greeting = c.readline()
    m = re.match(r"220 ucspi-env pid=(\d+) ", greeting)
    assert m, greeting
    return int(m.group(1))


def wait_exit(pid: int, timeout: float) -> float:
    """Seconds until process `pid` ends (its pidfd turns readable); fails after `timeout`."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return 0.0  # gone and reaped already
    try:
        started = time.monotonic()
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            raise AssertionError(f"process {pid} still running after {timeout:g}s")
        return time.monotonic() - started
    finally:
        os.close(pidfd)


class ExecBackend(IntegrationCase):
    ENV = {"PYTHONCOERCECLOCALE": "0", "DATABYTES": "20000000"}

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        # Copies in the class's folder (0755): exec_user = "nobody" must be able to run them.
        program = cls.tmp / "ucspi_env.py"
        shutil.copy2(SERVERS / "ucspi_env.py", program)
        cls.broken = cls.tmp / "broken.py"
        shutil.copy2(program, cls.broken)
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.exec_backend("ucspi", [program], exec_env=cls.ENV)
        p.exec_backend("ucspi_nobody", [program], exec_user="nobody", exec_group="nogroup",
                       exec_env=cls.ENV)
        p.exec_backend("chatty", [program])
        p.exec_backend("dead", [program, "--exit-before-greeting"])
        p.exec_backend("stubborn", [program, "--ignore-term"])
        p.exec_backend("broken", [cls.broken])
        p.listener("smtps", "smtp", "ucspi", hostname="mx.exec.test")
        p.listener("submission", "smtp", "ucspi", tls="starttls", submission=True)
        p.listener("dual", "smtp", "ucspi", host="::")
        p.listener("nobody", "smtp", "ucspi_nobody")
        p.listener("chatty", "smtp", "chatty")
        p.listener("dead_smtp", "smtp", "dead")
        p.listener("dead_imap", "imap", "dead")
        p.listener("dead_pop3", "pop3", "dead")
        p.listener("stubborn", "smtp", "stubborn")
        p.listener("broken", "smtp", "broken")
        p.start()
        cls.broken.chmod(0o644)  # loaded as executable; now the exec fails

    def tearDown(self):
        # No test leaves a program behind for the next one (bounded: SIGKILL comes after 5 s).
        wait_until(lambda: not children(self.postern.daemon.pid), 10,
                   "postern's exec programs to be reaped")
        super().tearDown()

    def expected_env(self, sock: ssl.SSLSocket, listener: str, sni, host: str = "mx.exec.test"):
        env = {"PROTO": "TCP", "TCPREMOTEIP": CLIENT_IP,
               "TCPREMOTEPORT": str(sock.getsockname()[1]),
               "TCPLOCALIP": LOCALHOST, "TCPLOCALPORT": str(self.postern.port(listener)),
               "TCPLOCALHOST": sni or host, "SSL_PROTOCOL": sock.version(),
               "SSL_CIPHER": sock.cipher()[0], "PATH": "/usr/bin:/bin", **self.ENV}
        if sni:
            env["SSL_TLS_SNI"] = sni
        return env

    def test_implicit_tls_environment(self):
        for sni in ("mail.a.test", None):
            with self.subTest(sni=sni):
                c = LineClient(tls_from(self.postern.port("smtps"), sni))
                port = c.local_port
                pid = greeting_pid(c)
                self.assertEqual(env_of(c), self.expected_env(c.sock, "smtps", sni))
                self.assertTrue(c.smtp("QUIT")[0].startswith("221"), c.transcript)
                c.close()
                fields = self.postern.session_end(port, "smtps", host=CLIENT_IP)
                self.assertEqual(fields.get("backend"), "ucspi", fields["_line"])
                self.assertEqual(fields.get("end"), "client_quit", fields["_line"])
                # its stderr, in postern's log under the backend's name
                self.postern.wait_log(rf"info ucspi\[{pid}\]: ucspi-env: session from {CLIENT_IP}$",
                                      since=self.postern.test_began)

    def test_starttls_environment(self):
        c = LineClient(connect_from(self.postern.port("submission")))
        self.assertTrue(c.readline().startswith("220 "), c.transcript)
        self.assertIn("STARTTLS", "".join(c.smtp("EHLO client.test")))
        self.assertTrue(c.smtp("STARTTLS")[0].startswith("220"), c.transcript)
        c.starttls("mail.b.test")
        self.assertIn("250-ucspi-env\r\n", c.smtp("EHLO client.test"))  # the program's own
        self.assertEqual(env_of(c), self.expected_env(c.sock, "submission", "mail.b.test"))
        c.smtp("QUIT")
        c.close()

    def test_starttls_ehlo_offers_the_programs_extensions(self):
        # Before TLS postern answers EHLO itself, with what the backend offers: for an exec
        # backend it runs the program for itself to learn that (at startup, then every 5 min).
        def offered():
            c = LineClient(connect_from(self.postern.port("submission")))
            c.readline()
            lines = c.smtp("EHLO client.test")
            c.close()
            return "250-X-UCSPI-ENV\r\n" in lines and lines
        lines = wait_until(offered, 10, "the program's EHLO extensions before TLS")
        self.assertIn("250 STARTTLS\r\n", lines)

    def test_dual_stack_listener_gives_plain_ipv4(self):
        c = LineClient(tls_from(self.postern.port("dual"), "mail.a.test"))
        port = c.local_port
        greeting_pid(c)
        env = env_of(c)
        self.assertEqual((env["TCPREMOTEIP"], env["TCPLOCALIP"]), (CLIENT_IP, LOCALHOST), env)
        c.smtp("QUIT")
        c.close()
        # postern's own log names the client as the program does: plain IPv4
        fields = self.postern.session_end(port, "dual", host=CLIENT_IP)
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])

    def test_exec_user_and_group(self):
        c = LineClient(tls_from(self.postern.port("nobody"), "mail.a.test"))
        greeting_pid(c)
        # nobody:nogroup, and no supplementary group of postern's (root's) left
        self.assertEqual(c.smtp("IDS"), ["250 uid=65534 gid=65534 groups=65534\r\n"])
        c.smtp("QUIT")
        c.close()

    def test_stderr_is_rate_limited(self):
        c = LineClient(tls_from(self.postern.port("chatty"), "mail.a.test"))
        pid = greeting_pid(c)
        self.assertEqual(c.smtp("STDERR 400"), ["250 ok\r\n"])
        c.smtp("QUIT")
        c.close()
        m = self.postern.wait_log(r"warning chatty: suppressed (\d+) stderr line\(s\)",
                                  since=self.postern.test_began)
        logged = len(re.findall(rf"chatty\[{pid}\]: stderr line \d+$",
                                self.postern.text()[self.postern.test_began:], re.M))
        self.assertLessEqual(logged, 100)
        self.assertGreaterEqual(int(m.group(1)), 300)

    def test_program_exits_before_its_greeting(self):
        for listener, pattern in (("dead_smtp", r"^421 "), ("dead_imap", r"^\* BYE "),
                                  ("dead_pop3", r"^-ERR ")):
            with self.subTest(listener=listener):
                c = LineClient(tls_from(self.postern.port(listener), "mail.a.test"))
                port = c.local_port
                self.assertRegex(c.read_to_eof(), pattern)
                c.close()
                fields = self.postern.session_end(port, listener, host=CLIENT_IP)
                self.assertEqual(fields.get("end"), "backend_unreachable", fields["_line"])
                self.assertEqual(fields.get("detail"), "backend closed before its greeting",
                                 fields["_line"])
        self.postern.wait_log(r"info dead\[\d+\]: ucspi-env: refusing to start \(test\)$",
                              since=self.postern.test_began)
        self.postern.wait_log(r"info dead\[\d+\]: exited with status 3$",
                              since=self.postern.test_began)

    def test_program_that_cannot_be_started(self):
        c = LineClient(tls_from(self.postern.port("broken"), "mail.a.test"))
        port = c.local_port
        self.assertRegex(c.read_to_eof(), r"^421 ")
        c.close()
        fields = self.postern.session_end(port, "broken", host=CLIENT_IP)
        self.assertEqual(fields.get("end"), "backend_unreachable", fields["_line"])
        self.assertEqual(fields.get("detail"), f"exec {self.broken}: Permission denied",
                         fields["_line"])

    def test_sessions_leave_no_zombie(self):
        postern = self.postern.daemon.pid
        clients = []
        for i in range(10):
            c = LineClient(tls_from(self.postern.port("smtps"), "mail.a.test"))
            greeting_pid(c)
            clients.append(c)
        running = children(postern)
        self.assertEqual(len(running), 10, running)  # one program per session
        for i, c in enumerate(clients):
            if i % 3 == 0:
                c.smtp("QUIT")  # the program exits on its own
                c.close()
            elif i % 3 == 1:
                c.close()  # the program reads EOF and exits
            else:
                reset(c)  # the session ends at once: the program gets SIGTERM
        wait_until(lambda: not children(postern), 10, "no child of postern's left")
        self.assertNotRegex(self.postern.text()[self.postern.test_began:], r"SIGKILL")

    def test_program_ignoring_sigterm_is_killed_5s_later(self):
        c = LineClient(tls_from(self.postern.port("stubborn"), "mail.a.test"))
        pid = greeting_pid(c)
        reset(c)  # the client vanishes; the program ignores the session's end and SIGTERM
        elapsed = wait_exit(pid, 15)
        self.assertGreater(elapsed, 4.0)
        self.assertLess(elapsed, 8.0)
        self.postern.wait_log(rf"stubborn\[{pid}\]: still running 5000 ms after SIGTERM; "
                              "sending SIGKILL", since=self.postern.test_began)
        wait_until(lambda: not children(self.postern.daemon.pid), 5, "the killed program reaped")

    def test_shutdown_ends_the_programs(self):
        p = self.own_for_test(Postern(self.workdir_for_test(), self.pki))
        p.exec_backend("stubborn", [self.tmp / "ucspi_env.py", "--ignore-term"])
        p.listener("smtps", "smtp", "stubborn")
        p.start()
        c = LineClient(tls_from(p.port("smtps"), "mail.a.test"))
        pid = greeting_pid(c)
        started = time.monotonic()
        p.daemon.send_signal(15)
        self.assertEqual(p.daemon.wait(10), 0)
        self.assertLess(time.monotonic() - started, 5)
        self.assertLess(wait_exit(pid, 1), 1)  # gone already
        p.wait_log(rf"stubborn\[{pid}\]: still running at shutdown after SIGTERM; "
                   "sending SIGKILL")
        c.close()

    def test_exec_user_refused_unless_root(self):
        d = self.workdir_for_test()
        pki = Pki(d / "pki")
        for f in (d / "pki").iterdir():
            f.chmod(0o644)  # postern runs as nobody here and must get as far as the backends
        p = Postern(d / "postern", pki)
        p.exec_backend("qmail", [self.tmp / "ucspi_env.py"], exec_user="nobody")
        p.listener("smtps", "smtp", "qmail")
        config = p.write_config()
        out = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                   self.postern.daemon.argv[0], "run", "--config", config], timeout=20)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn('backend "qmail": backend[1].exec_user = "nobody": running the program as '
                      "another user or group needs postern to run as root (it runs as uid 65534)",
                      out.stderr)


if __name__ == "__main__":
    unittest.main()
