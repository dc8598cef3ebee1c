"""Connection limits: `max_sessions_per_client` and `max_new_per_client` per listener,
`server.max_sessions` for the whole process, and the open-files limit behind it.

A connection over a limit gets the protocol's temporary error in place of the greeting on a
STARTTLS listener (SMTP 421, IMAP BYE, POP3 -ERR) and is closed before the handshake on an
implicit-TLS one (not a byte sent); one rate-limited log line says which limit; a client from
another address (127.0.0.2) is still served. postern runs 2 workers, so the counts hold across
them. With accept_proxy the address the balancer's PROXY header names is what counts.
"""

import re
import ssl
import time
import unittest

from harness import (LOCALHOST, PASSWORD, POSTERN_BIN, USER, Daemon, ImapSni, ImapStarttls,
                     IntegrationCase, LineClient, Pki, Postern, SmtpStarttls, listening_ports,
                     plain_connect, run, wait_listening)

OTHER = "127.0.0.2"
CAP = {"max_sessions_per_client": 2, "max_new_per_client": "off"}
IMAP_BUSY = "* BYE [UNAVAILABLE] Too many connections from your address, try again later\r\n"


class PerClientLimits(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        p.server["workers"] = 2
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        p.listener("imap", "imap", "imap", tls="starttls", **CAP)
        p.listener("smtp", "smtp", "smtp", tls="starttls", **CAP)
        p.listener("imaps", "imap", "imap", **CAP)
        p.listener("imap_burst", "imap", "imap", tls="starttls", max_sessions_per_client=1)
        p.listener("pop3_rate", "pop3", "pop3", tls="starttls", max_sessions_per_client=0,
                   max_new_per_client="3/3s")
        p.listener("lb_imap", "imap", "imap", tls="starttls", accept_proxy=True,
                   trusted_proxies=[LOCALHOST], max_sessions_per_client=1)
        p.listener("open", "imap", "imap", tls="starttls", max_sessions_per_client=0,
                   max_new_per_client="off")
        p.start()

    # -- helpers -------------------------------------------------------------------------------

    def line_client(self, listener: str, source=None) -> LineClient:
        c = LineClient(plain_connect(self.postern.port(listener), source=source))
        self.addCleanup(c.close)
        return c

    def greeted(self, listener: str, greeting: str, source=None) -> LineClient:
        """A client whose greeting starts with `greeting`, kept open."""
        c = self.line_client(listener, source)
        self.assertTrue(c.readline().startswith(greeting), c.transcript)
        return c

    def refused(self, listener: str, source=None) -> tuple[int, str]:
        """Connects, reads to EOF; returns the client port and what postern sent."""
        c = self.line_client(listener, source)
        return c.local_port, c.read_to_eof()

    def wait_refusal_line(self, listener: str, port: int, why: str, host: str = LOCALHOST):
        return self.postern.wait_log(
            rf"^.* warning listener {re.escape(self.postern.listen_address(listener))}: refused a "
            rf"connection from {re.escape(host)}:{port}: {why}.*$", since=self.postern.test_began)

    def release_one(self, client: LineClient, listener: str) -> None:
        """Closes a held client and waits until postern has ended its session."""
        port = client.local_port
        client.close()
        self.postern.session_end(port, listener)

    # -- max_sessions_per_client ------------------------------------------------------------------

    def test_imap_starttls_over_the_cap_gets_bye_and_others_are_served(self):
        held = [self.greeted("imap", "* OK") for _ in range(2)]
        port, text = self.refused("imap")
        self.assertEqual(text, IMAP_BUSY)
        self.wait_refusal_line("imap", port,
                               r"its address has 2 session\(s\) open \(max_sessions_per_client = 2\)")
        # another address is served, through STARTTLS to a login at Dovecot
        m = ImapStarttls("mail.a.test", self.postern.port("imap"), source=OTHER)
        m.starttls(ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        # a session that ends makes room again
        self.release_one(held[0], "imap")
        self.greeted("imap", "* OK")

    def test_smtp_starttls_over_the_cap_gets_421(self):
        for _ in range(2):
            self.greeted("smtp", "220 ")
        port, text = self.refused("smtp")
        self.assertRegex(text, r"^421 4\.7\.0 \S+ Too many connections from your address, "
                               r"try again later\r\n$")
        self.wait_refusal_line("smtp", port, r"its address has 2 session\(s\) open")
        s = SmtpStarttls("mail.a.test", self.postern.port("smtp"), source=OTHER)
        s.starttls(context=self.pki.context())
        self.assertEqual(s.ehlo()[0], 250)
        self.assertEqual(s.noop()[0], 250)
        s.quit()

    def test_implicit_tls_over_the_cap_closed_before_the_handshake(self):
        held = []
        for _ in range(2):
            m = ImapSni("mail.a.test", self.postern.port("imaps"), ssl_context=self.pki.context())
            self.addCleanup(m.shutdown)
            held.append(m)
        s = plain_connect(self.postern.port("imaps"))
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        self.assertEqual(s.recv(4096), b"", "postern sent bytes to a refused implicit-TLS client")
        self.wait_refusal_line("imaps", port, r"its address has 2 session\(s\) open")
        # a real client sending its ClientHello: no ServerHello comes back
        with self.assertRaises((ssl.SSLError, OSError)):
            self.pki.context().wrap_socket(plain_connect(self.postern.port("imaps")),
                                           server_hostname="mail.a.test").close()
        m = ImapSni("mail.a.test", self.postern.port("imaps"), ssl_context=self.pki.context(),
                    source=OTHER)
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()

    def test_limits_off_admit_the_same_clients(self):
        # The control: 0 and "off" let one address hold and open as many as it likes.
        for _ in range(5):
            self.greeted("open", "* OK")

    # -- max_new_per_client -------------------------------------------------------------------------

    def test_rate_window(self):
        first = time.monotonic()
        for _ in range(3):
            c = self.greeted("pop3_rate", "+OK")
            c.close()
        port, text = self.refused("pop3_rate")
        self.assertEqual(text, "-ERR [SYS/TEMP] Too many new connections from your address, "
                               "try again later\r\n")
        self.wait_refusal_line("pop3_rate", port, r"its address opened 3 new connection\(s\) in "
                                                  r'the window \(max_new_per_client = "3/3s"\)')
        self.greeted("pop3_rate", "+OK", source=OTHER)
        # Refused until the window that began with the first connection has passed.
        deadline = first + 10
        while True:
            c = self.line_client("pop3_rate")
            line = c.readline()
            c.close()
            if line.startswith("+OK"):
                break
            self.assertTrue(line.startswith("-ERR [SYS/TEMP]"), line)
            self.assertLess(time.monotonic(), deadline, "still refused 10 s after the window began")
            time.sleep(0.1)
        self.assertGreater(time.monotonic() - first, 2.9, "admitted again within the 3 s window")

    # -- the log -------------------------------------------------------------------------------------

    def test_refusals_are_logged_once_a_second_with_a_count(self):
        self.greeted("imap_burst", "* OK")
        started = time.monotonic()
        ports = [self.refused("imap_burst")[0] for _ in range(5)]
        quick = time.monotonic() - started
        self.wait_refusal_line("imap_burst", ports[0], r"its address has 1 session\(s\) open "
                                                       r"\(max_sessions_per_client = 1\)$")
        time.sleep(max(0.0, started + 1.1 - time.monotonic()))  # into the next second
        last, _ = self.refused("imap_burst")
        self.wait_refusal_line("imap_burst", last, r".*; 4 more refused since the last such line$")
        text = self.postern.log.read_bytes()[self.postern.test_began:].decode(errors="replace")
        name = re.escape(self.postern.listen_address("imap_burst"))
        lines = re.findall(rf"listener {name}: refused a connection from", text)
        self.assertLess(quick, 0.9, "the first 5 refusals took too long to share one second")
        self.assertEqual(len(lines), 2, text)

    # -- accept_proxy ------------------------------------------------------------------------------

    def test_accept_proxy_counts_the_address_in_the_header(self):
        def via_balancer(source: str, port: int) -> LineClient:
            c = self.line_client("lb_imap")  # every connection comes from the balancer, 127.0.0.1
            c.sock.sendall(f"PROXY TCP4 {source} 127.0.0.1 {port} 143\r\n".encode())
            return c

        held = via_balancer("192.0.2.7", 5555)
        self.assertTrue(held.readline().startswith("* OK"), held.transcript)
        self.assertEqual(via_balancer("192.0.2.7", 5556).read_to_eof(), IMAP_BUSY)
        self.wait_refusal_line("lb_imap", 5556, r"its address has 1 session\(s\) open",
                               host="192.0.2.7")
        other = via_balancer("192.0.2.8", 5557)  # the same balancer, another client: served
        self.assertTrue(other.readline().startswith("* OK"), other.transcript)


class TotalLimit(IntegrationCase):
    """server.max_sessions across two workers and every listener, whoever the clients are."""

    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        p.server.update({"workers": 2, "max_sessions": 3})
        p.backend("imap", cls.dovecot.imap_address)
        p.listener("imap", "imap", "imap", tls="starttls")
        p.listener("imaps", "imap", "imap")
        p.start()

    def connect(self, listener: str, source: str) -> LineClient:
        c = LineClient(plain_connect(self.postern.port(listener), source=source))
        self.addCleanup(c.close)
        return c

    def test_max_sessions_counts_every_listener_and_address(self):
        held = []
        for i in range(2):
            c = self.connect("imap", f"127.0.0.{i + 1}")
            self.assertTrue(c.readline().startswith("* OK"), c.transcript)
            held.append(c)
        tls = ImapSni("mail.a.test", self.postern.port("imaps"), ssl_context=self.pki.context(),
                      source="127.0.0.3")
        self.addCleanup(tls.shutdown)
        refused = self.connect("imap", "127.0.0.4")
        self.assertEqual(refused.read_to_eof(),
                         "* BYE [UNAVAILABLE] Too many connections, try again later\r\n")
        self.postern.wait_log(
            rf"refused a connection from 127\.0\.0\.4:{refused.local_port}: 3 session\(s\) open "
            rf"in all \(server\.max_sessions = 3\)$", since=self.postern.test_began)
        s = plain_connect(self.postern.port("imaps"), source="127.0.0.5")
        self.addCleanup(s.close)
        self.assertEqual(s.recv(4096), b"")  # implicit TLS: closed before the handshake
        port = held[0].local_port
        held[0].close()
        self.postern.session_end(port, "imap")
        again = self.connect("imap", "127.0.0.4")
        self.assertTrue(again.readline().startswith("* OK"), again.transcript)


class OpenFilesLimit(IntegrationCase):
    """The open-files limit: raised from soft to hard at start, and a max_sessions it cannot
    hold refused by `run` and reported by `check`."""

    def config(self, max_sessions: int) -> Postern:
        p = Postern(self.workdir_for_test(), self.pki)
        p.server["max_sessions"] = max_sessions
        p.backend("imap", "127.0.0.1:1")
        p.listener("imap", "imap", "imap")
        p.write_config()
        return p

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")

    def test_soft_limit_raised_to_the_hard_one(self):
        p = self.config(1000)  # about 2070 open files: more than the soft limit of 256
        p.daemon = Daemon("postern", ["prlimit", "--nofile=256:4096", POSTERN_BIN, "run",
                                      "--config", p.config], p.log)
        self.own_for_test(p).daemon.start()
        wait_listening([p.port("imap")], 15, p.daemon.proc, "postern")
        with open(f"/proc/{p.daemon.pid}/limits") as f:
            limits = f.read()
        self.assertRegex(limits, r"(?m)^Max open files\s+4096\s+4096\s+files")
        p.wait_log(r"ready \(1 worker\(s\), at most 1000 sessions\)$")

    def test_run_refuses_max_sessions_over_the_limit(self):
        p = self.config(1000)
        out = run(["prlimit", "--nofile=1024:1024", POSTERN_BIN, "run", "--config", p.config],
                  timeout=15)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        text = out.stdout + out.stderr
        line = p.config.read_text().splitlines().index("max_sessions = 1000") + 1
        self.assertRegex(text, rf"{re.escape(str(p.config))}:{line}:\d+: server\.max_sessions: "
                               r"max_sessions = 1000, needs \d+ open files .* but the open-files "
                               r"limit is 1024: raise it to at least (\d+) \(LimitNOFILE=\1 .*"
                               r"`ulimit -n \1`.*, or lower max_sessions to at most \d+")
        self.assertNotIn(p.port("imap"), listening_ports())

    def test_check_warns_about_max_sessions_over_the_limit(self):
        p = self.config(1000)
        out = run(["prlimit", "--nofile=1024:1024", POSTERN_BIN, "check", "--config", p.config],
                  timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"(?m)^at most 1000 sessions with 1 worker\(s\): \d+ open "
                                     r"files; hard limit here \(ulimit -Hn\): 1024$")
        self.assertRegex(out.stdout, r"(?m)^warning: server\.max_sessions: max_sessions = 1000, "
                                     r"needs .*postern run refuses to start under it\)$")
        self.assertRegex(out.stdout, r"OK with \d+ warning\(s\)")


if __name__ == "__main__":
    unittest.main()
