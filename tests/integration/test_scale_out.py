"""Scale-out (issue 15, point 5): HAProxy as an L4 balancer (mode tcp, send-proxy-v2, round
robin, an HTTP check on each instance's /readyz) in front of three postern processes that share
one ticket-key file and one certificate set, each with accept_proxy and the backend reached
with PROXY v2 (Dovecot's haproxy listener). A client on 127.0.0.2:

- logs in and fetches through the balancer 300 times, offering its last session each time:
  every login works, the sessions land on all three instances, and at least 90% resume
  although consecutive connections go to different processes (only a shared ticket key makes
  that possible);
- keeps going while one instance is stopped (SIGTERM: /readyz answers 503 while it drains) and
  started again: no login fails once the balancer has seen it down;
- is seen as itself (127.0.0.2, not HAProxy's 127.0.0.1) in postern's log and in Dovecot's.
"""

import base64
import os
import re
import signal
import ssl
import threading
import time
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, Haproxy, ImapSni, IntegrationCase,
                     Pki, Postern, free_port, message, unique, wait_until)

CLIENT = "127.0.0.2"
LOGINS = 300


class Instance(Postern):
    """A postern with [metrics] on its own port (health checks)."""

    def __init__(self, workdir, pki, metrics_port: int):
        super().__init__(workdir, pki)
        self.metrics_port = metrics_port

    def config_text(self) -> str:
        return super().config_text() + f'\n[metrics]\nlisten = "{LOCALHOST}:{self.metrics_port}"\n'


class ImapResuming(ImapSni):
    """ImapSni from CLIENT offering a TLS session to resume."""

    def __init__(self, port: int, context: ssl.SSLContext, session):
        self._session = session
        super().__init__("mail.a.test", port, ssl_context=context, source=CLIENT, timeout=20)

    def _create_socket(self, timeout):
        import socket
        raw = socket.create_connection((self._connect_host, self.port), timeout=timeout,
                                       source_address=(CLIENT, 0))
        return self.ssl_context.wrap_socket(raw, server_hostname=self._sni, session=self._session)


class ScaleOut(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot", haproxy=True)).start()
        cls.subject = unique("scale")
        cls.dovecot.seed(message(cls.subject))
        cls.keys = cls.tmp / "ticket.keys"
        cls.keys.write_text("".join(base64.b64encode(os.urandom(80)).decode() + "\n"
                                    for _ in range(3)))
        cls.keys.chmod(0o600)
        cls.instances = []
        servers = []
        for i in range(3):
            p = cls.own(Instance(cls.tmp / f"postern{i}", cls.pki, free_port()))
            p.tls["ticket_keys_file"] = str(cls.keys)
            p.backend("imap", cls.dovecot.imap_haproxy_address, send_proxy="v2")
            p.listener("imaps", "imap", "imap", accept_proxy=True, trusted_proxies=[LOCALHOST])
            cls.instances.append(p)
            servers.append((f"p{i}", p.listen_address("imaps"), p.metrics_port))
        cls.haproxy = Haproxy(cls.tmp / "haproxy")
        cls.port = cls.haproxy.balanced("imaps", servers)
        for p in cls.instances:
            p.start()
        cls.own(cls.haproxy).start()

    def setUp(self):
        super().setUp()
        self.context = self.pki.context()  # a session resumes only from its own context

    def login(self, session=None):
        """One login, select and fetch through the balancer; the connection's TLS session."""
        m = ImapResuming(self.port, self.context, session)
        try:
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
            typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            self.assertEqual(typ, "OK")
            self.assertIn(self.subject.encode(), data[0][1])
            reused, new_session = m.sock.session_reused, m.sock.session
        except BaseException:
            m.shutdown()
            raise
        m.logout()
        return reused, new_session

    def sessions_from_client(self, p: Postern, since: int = 0) -> int:
        return len(re.findall(rf"session end client={re.escape(CLIENT)}:\d+ ",
                              p.log_text()[since:]))

    def test_logins_resume_across_instances_and_each_sees_the_client(self):
        before = [len(p.log_text()) for p in self.instances]
        session, resumed = None, 0
        started = time.monotonic()
        for _ in range(LOGINS):
            reused, session = self.login(session)
            resumed += reused
        elapsed = time.monotonic() - started
        # The last session lines may still be on their way (and the other test's last few may
        # land after `before`: at least, not exactly).
        wait_until(lambda: sum(self.sessions_from_client(p, b)
                               for p, b in zip(self.instances, before)) >= LOGINS, 20,
                   "every session's end line")
        spread = [self.sessions_from_client(p, b) for p, b in zip(self.instances, before)]
        print(f"\nscale-out: {LOGINS} logins in {elapsed:.1f} s, per instance {spread}, "
              f"{resumed} of {LOGINS - 1} resumed")
        for count in spread:
            self.assertGreater(count, LOGINS // 6, spread)
        self.assertGreaterEqual(resumed, 0.9 * (LOGINS - 1))
        # The client as itself: postern's line names the balancer as `via`, Dovecot the client.
        self.assertRegex(self.instances[0].log_text(),
                         rf"session end client={re.escape(CLIENT)}:\d+ via={re.escape(LOCALHOST)}")
        self.assertRegex(self.dovecot.log_text(), rf"rip={re.escape(CLIENT)}")

    def test_an_instance_stopped_and_started_again(self):
        victim = self.instances[1]
        failures_before_down, failures_after_down, ok = [], [], 0
        down_seen = threading.Event()

        def loop_until(condition, deadline):
            nonlocal ok
            session = None
            while not condition() and time.monotonic() < deadline:
                try:
                    _, session = self.login(session)
                    ok += 1
                except Exception as e:  # refused, reset, TLS, IMAP: all count
                    (failures_after_down if down_seen.is_set() else failures_before_down).append(
                        f"{type(e).__name__}: {e}")

        haproxy_log = lambda: self.haproxy.log.read_text(errors="replace")
        since = len(haproxy_log())
        victim.daemon.send_signal(signal.SIGTERM)
        # Until HAProxy has marked it down (its /readyz says 503 during the drain).
        loop_until(lambda: re.search(r"p1 is DOWN", haproxy_log()[since:]) is not None,
                   time.monotonic() + 20)
        self.assertRegex(haproxy_log()[since:], r"p1 is DOWN")
        down_seen.set()
        self.assertEqual(victim.daemon.wait(40), 0)
        victim.start()
        loop_until(lambda: re.search(r"p1 is UP", haproxy_log()[since:]) is not None,
                   time.monotonic() + 20)
        self.assertRegex(haproxy_log()[since:], r"p1 is UP")
        mark = len(victim.log_text())
        for _ in range(12):
            self.login()
            ok += 1
        print(f"\nscale-out stop/start: {ok} logins, {len(failures_before_down)} failed before "
              f"HAProxy saw the instance down, {len(failures_after_down)} after")
        self.assertEqual(failures_after_down, [])
        self.assertGreater(self.sessions_from_client(victim, mark), 0, "none on the restarted one")


if __name__ == "__main__":
    unittest.main()
