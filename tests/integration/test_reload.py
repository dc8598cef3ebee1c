"""Certificates in production: reload without dropping a connection.

A certbot-style renewal (new files under archive/, symlinks in live/ swapped) and a
Kubernetes-style "..data" swap are picked up by postern on its own (inotify, no SIGHUP): new
connections get the new certificate (checked by fingerprint), a session opened before goes on
working. A broken renewal (key that does not match) keeps the old certificate in service and is
logged. Twenty reloads under a bounded loop of handshakes fail none of them. Each test has its
own certificates and postern, so any one runs alone:
`python3 -m unittest test_reload.ReloadTest.test_kubernetes_data_swap`.
"""

import os
import shutil
import signal
import threading
import time

from harness import Dovecot, ImapSni, IntegrationCase, Pki, Postern, tls_connect


def served(pki: Pki, port: int, sni: str) -> str:
    with tls_connect(port, sni) as s:
        return pki.identify(s.getpeercert(binary_form=True))


def link(target: str, name) -> None:
    """Atomically points symlink `name` at `target` (create aside, rename over), like certbot."""
    tmp = f"{name}.new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, name)


class ReloadTest(IntegrationCase):
    """Each test has its own PKI, certbot and Kubernetes folders and postern (one shared Dovecot
    behind them): every test runs alone and in any order."""

    @classmethod
    def start_fixtures(cls):
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()

    def setUp(self):
        work = self.workdir_for_test()
        self.pki = Pki(work / "pki")
        for name in ("a2", "a3"):
            self.pki.add(name, ["mail.a.test"], 40)
        for name in ("k1", "k2"):
            self.pki.add(name, ["mail.k.test"], 40)
        # an RSA and an ECDSA certificate for one name, reloaded with the rest
        self.pki.add("r_rsa", ["mail.r.test"], 40, key="rsa")
        self.pki.add("r_ec", ["mail.r.test"], 40)

        # certbot: live/mail.a.test/{fullchain,privkey}.pem -> ../../archive/mail.a.test/*1.pem
        self.live = work / "letsencrypt" / "live"
        self.archive = work / "letsencrypt" / "archive" / "mail.a.test"
        self.archive.mkdir(parents=True)
        (self.live / "mail.a.test").mkdir(parents=True)
        (self.live / "README").write_text("certbot's own README: not a certificate folder\n")
        self.certbot_issue("a", 1)
        # Kubernetes secret volume: tls.crt -> ..data/tls.crt, ..data -> ..2026_11_22_1
        self.secret = work / "secret"
        self.secret.mkdir()
        self.k8s_issue("k1", 1)
        os.symlink("..data/tls.crt", self.secret / "tls.crt")
        os.symlink("..data/tls.key", self.secret / "tls.key")

        p = self.postern = self.own_for_test(Postern(work / "postern", self.pki,
                                                     certificates=["default", "b", "r_rsa", "r_ec"]))
        p.tls["certificates_dir"] = str(self.live)
        p.extra_certificates = [(self.secret / "tls.crt", self.secret / "tls.key")]
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.start()

    def certbot_issue(self, short: str, n: int) -> None:
        shutil.copy(self.pki.crt(short), self.archive / f"fullchain{n}.pem")
        shutil.copy(self.pki.key(short), self.archive / f"privkey{n}.pem")
        live = self.live / "mail.a.test"
        link(f"../../archive/mail.a.test/fullchain{n}.pem", live / "fullchain.pem")
        link(f"../../archive/mail.a.test/privkey{n}.pem", live / "privkey.pem")

    def k8s_issue(self, short: str, n: int) -> None:
        version = self.secret / f"..2026_11_22_{n}"
        version.mkdir()
        shutil.copy(self.pki.crt(short), version / "tls.crt")
        shutil.copy(self.pki.key(short), version / "tls.key")
        link(version.name, self.secret / "..data")

    def wait_reload(self, since: int, timeout: float = 15.0) -> str:
        m = self.postern.wait_log(r"(certificates reloaded|certificate reload \(.*\) failed)[^\n]*", timeout, since=since)
        return m.group(0)

    def test_changed_listener_keys_are_reported_as_needing_a_restart(self):
        # A reload takes over certificates only. An admin who changes a listener key (here: a
        # balancer dropped from trusted_proxies) or a [server] key must be told it is not in force yet; a
        # SIGHUP with nothing changed must not say so.
        # A [server] key too (shutdown_timeout): both are named.
        restart = r"changes to \[server\], \[\[listener\]\] take effect after a restart"
        since = self.postern.log_size()
        self.postern.daemon.send_signal(signal.SIGHUP)
        self.assertIn("certificates reloaded", self.wait_reload(since))
        self.assertNotRegex(self.postern.log.read_text()[since:], r"take effect after a restart")

        self.postern.listeners["imap"].update(accept_proxy=True, trusted_proxies=["10.0.0.0/8"])
        self.postern.server["shutdown_timeout"] = "7s"
        self.postern.write_config()
        since = self.postern.log_size()
        self.postern.daemon.send_signal(signal.SIGHUP)
        self.assertIn("certificates reloaded", self.wait_reload(since))
        self.postern.wait_log(restart, 5, since=since)

    def test_certbot_renewal_while_a_session_is_open(self):
        port = self.postern.port("imap")
        self.assertEqual(served(self.pki, port, "mail.a.test"), "a")
        m = ImapSni("mail.a.test", port, ssl_context=self.pki.context())
        self.assertEqual(m.login("test", "secret")[0], "OK")

        since = self.postern.log_size()
        self.certbot_issue("a2", 2)  # no SIGHUP: postern sees the swapped links itself
        self.assertIn("reloaded", self.wait_reload(since))
        self.assertEqual(served(self.pki, port, "mail.a.test"), "a2")
        # the session opened before the renewal goes on, on its old certificate
        self.assertEqual(self.pki.identify(m.sock.getpeercert(binary_form=True)), "a")
        self.assertEqual(m.noop()[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()

    def test_kubernetes_data_swap(self):
        port = self.postern.port("imap")
        self.assertEqual(served(self.pki, port, "mail.k.test"), "k1")
        since = self.postern.log_size()
        self.k8s_issue("k2", 2)
        self.assertIn("reloaded", self.wait_reload(since))
        self.assertEqual(served(self.pki, port, "mail.k.test"), "k2")

    def test_broken_renewal_keeps_the_old_certificate(self):
        port = self.postern.port("imap")
        before = served(self.pki, port, "mail.a.test")
        self.assertEqual(before, "a")
        since = self.postern.log_size()
        # a new certificate with somebody else's key
        shutil.copy(self.pki.crt("a3"), self.archive / "fullchain3.pem")
        shutil.copy(self.pki.key("b"), self.archive / "privkey3.pem")
        live = self.live / "mail.a.test"
        link("../../archive/mail.a.test/fullchain3.pem", live / "fullchain.pem")
        link("../../archive/mail.a.test/privkey3.pem", live / "privkey.pem")
        line = self.wait_reload(since)
        self.assertIn("failed", line)
        text = self.postern.text()[since:]
        self.assertRegex(text, r"certificate reload failed: .*privkey\.pem.*does not match")
        self.assertIn("still serving the previous", text)
        self.assertEqual(served(self.pki, port, "mail.a.test"), before)
        self.assertEqual(served(self.pki, port, "mail.b.test"), "b")
        # mended, the folder is picked up again
        since = self.postern.log_size()
        shutil.copy(self.pki.key("a3"), self.archive / "privkey3.pem")
        self.assertIn("reloaded", self.wait_reload(since))
        self.assertEqual(served(self.pki, port, "mail.a.test"), "a3")

    def test_twenty_reloads_under_load_fail_no_handshake(self):
        port = self.postern.port("imap")
        failures, handshakes = [], [0]
        stop = threading.Event()

        def hammer():
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    with tls_connect(port, "mail.b.test", timeout=5) as s:
                        if self.pki.identify(s.getpeercert(binary_form=True)) != "b":
                            failures.append("wrong certificate")
                        handshakes[0] += 1
                except OSError as e:  # ssl.SSLError is an OSError
                    failures.append(repr(e))

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for _ in range(20):
                since = self.postern.log_size()
                self.postern.daemon.send_signal(signal.SIGHUP)
                self.assertIn("reloaded", self.wait_reload(since))
        finally:
            stop.set()
            for t in threads:
                t.join(70)
        self.assertEqual(failures, [])
        self.assertGreater(handshakes[0], 20)
        self.assertGreaterEqual(self.postern.text().count("certificates reloaded (SIGHUP)"), 20)
