"""Metrics that count per certificate, per resumption and per refusal (issue 15, point 1), on a
postern with two workers so every figure is a sum over both:
postern_certificate_served_total{certificate}, postern_resumed_handshakes_total{listener},
postern_sni_rejected_total{listener} (strict_sni) and postern_limit_rejected_total{listener,
limit}. Real Dovecot behind postern; the figures are compared before and after, exactly.
"""

import signal
import ssl
import time
import unittest

from harness import (LOCALHOST, Dovecot, IntegrationCase, LineClient, Pki, free_port, plain_connect,
                     tls_connect, wait_until)
import test_metrics  # not its classes by name: unittest would run its cases here too

LOGINS_BY_NAME = 6  # over two workers: each handshake may land on either
LOGINS_WITHOUT_SNI = 3
RESUMPTIONS = 4


class MetricsCounts(IntegrationCase):
    scrape = test_metrics.Metrics.scrape
    value = staticmethod(test_metrics.Metrics.value)

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        p = test_metrics.MetricsPostern(cls.tmp / "postern", cls.pki, strict_sni=True,
                           metrics_listen=f"{LOCALHOST}:{free_port()}")
        p.server["workers"] = 2
        p.backend("imap", cls.dovecot.imap_address)
        p.listener("imap", "imap", "imap")  # implicit TLS
        p.listener("capped", "imap", "imap", tls="starttls", max_sessions_per_client=1)
        p.start()
        wait_until(lambda: test_metrics.Metrics.status(p, "/healthz") == 200, 10,
                   "the metrics endpoint", proc=p.daemon.proc)
        cls.postern = cls.own(p)

    def greeted(self, sni):
        """An IMAPS client that read the greeting (sni None: sends none)."""
        c = LineClient(tls_connect(self.postern.port("imap"), sni))
        self.addCleanup(c.close)
        self.assertTrue(c.readline().startswith("* OK"), c.transcript)
        c.imap("z", "LOGOUT")
        return c

    def served(self, families, certificate):
        return self.value(families, "postern_certificate_served",
                          "postern_certificate_served_total", certificate=certificate)

    def test_served_by_certificate_name_and_default(self):
        """Clients naming mail.a.test count under its name, clients sending no SNI under
        "default"; other certificates do not move; the sum is over both workers."""
        before = self.scrape()
        for _ in range(LOGINS_BY_NAME):
            self.greeted("mail.a.test")
        for _ in range(LOGINS_WITHOUT_SNI):
            self.greeted(None)
        after = self.scrape()
        self.assertEqual(self.served(after, "mail.a.test") - self.served(before, "mail.a.test"),
                         LOGINS_BY_NAME, self.last_text)
        self.assertEqual(self.served(after, "default") - self.served(before, "default"),
                         LOGINS_WITHOUT_SNI, self.last_text)
        self.assertEqual(self.served(after, "mail.b.test"), self.served(before, "mail.b.test"))
        labels = {s.labels["certificate"] for s in after["postern_certificate_served"].samples}
        loaded = {name for dns, _ in Pki.CERTS.values() for name in dns}
        self.assertLessEqual(labels, {"default", *loaded}, self.last_text)

    def test_resumed_handshakes_counted(self):
        """One full handshake, then RESUMPTIONS connections that each offer the previous one's
        ticket and resume (as the client reports): postern_resumed_handshakes_total moves by
        exactly RESUMPTIONS, postern_handshakes_total by one more."""
        listen = self.postern.listen_address("imap")
        resumed = ("postern_resumed_handshakes", "postern_resumed_handshakes_total")
        context = self.pki.context()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        before = self.scrape()
        session, reused = None, 0
        for _ in range(RESUMPTIONS + 1):
            tls = context.wrap_socket(plain_connect(self.postern.port("imap")),
                                      server_hostname="mail.a.test", session=session)
            # TLS 1.3 tickets arrive after the handshake: reading the greeting takes them in.
            self.assertTrue(tls.makefile("rb").readline().startswith(b"* OK"))
            reused += tls.session_reused
            session = tls.session
            tls.close()
        self.assertEqual(reused, RESUMPTIONS, "the client could not resume")
        after = self.scrape()
        self.assertEqual(self.value(after, *resumed, listener=listen) -
                         self.value(before, *resumed, listener=listen), RESUMPTIONS,
                         self.last_text)
        full = ("postern_handshakes", "postern_handshakes_total")
        labels = {"listener": listen, "result": "ok", "version": "TLSv1.3"}
        handshakes = self.value(after, *full, **labels) - self.value(before, *full, **labels)
        self.assertEqual(handshakes, RESUMPTIONS + 1, self.last_text)

    def test_unknown_name_refused_by_strict_sni_is_counted(self):
        """A client naming a host postern holds no certificate for is refused (strict_sni):
        postern_sni_rejected_total{listener} moves by one, and the name is no label."""
        listen = self.postern.listen_address("imap")
        before = self.scrape()
        with self.assertRaises(ssl.SSLError):
            tls_connect(self.postern.port("imap"), "unknown.example").close()
        wait_until(lambda: self.value(self.scrape(), "postern_sni_rejected",
                                      "postern_sni_rejected_total", listener=listen) ==
                   self.value(before, "postern_sni_rejected", "postern_sni_rejected_total",
                              listener=listen) + 1, 5, "the refusal counted")
        self.assertNotIn("unknown.example", self.last_text)

    def test_limit_refusal_counted_by_listener_and_limit(self):
        """A second connection from one address on a max_sessions_per_client = 1 listener is
        refused: postern_limit_rejected_total{limit="max_sessions_per_client"} moves by one,
        the other limits do not."""
        listen = self.postern.listen_address("capped")
        family, sample = "postern_limit_rejected", "postern_limit_rejected_total"
        before = self.scrape()
        first = LineClient(plain_connect(self.postern.port("capped")))
        self.addCleanup(first.close)
        self.assertTrue(first.readline().startswith("* OK"), first.transcript)
        second = LineClient(plain_connect(self.postern.port("capped")))
        self.addCleanup(second.close)
        self.assertIn("Too many connections", second.readline(), second.transcript)
        after = self.scrape()
        for limit, moved in (("max_sessions_per_client", 1), ("max_sessions", 0),
                             ("max_new_per_client", 0)):
            labels = {"listener": listen, "limit": limit}
            self.assertIn(labels, [s.labels for s in after[family].samples], self.last_text)
            self.assertEqual(self.value(after, family, sample, **labels) -
                             self.value(before, family, sample, **labels), moved, self.last_text)

    def reloads(self, result):
        return self.value(self.scrape(), "postern_certificate_reloads",
                          "postern_certificate_reloads_total", result=result)

    def test_reloads_counted_by_result(self):
        """SIGHUP with nothing changed: reloads_total{result="success"} moves by one and the
        last-success timestamp to now. A certificate file turned to junk: a failure is
        counted (postern keeps serving); mended, a success again."""
        p = self.postern
        began = time.time()
        ok, failed = self.reloads("success"), self.reloads("failure")
        p.daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: self.reloads("success") == ok + 1, 10, "the reload counted")
        last = "postern_certificate_last_reload_success_timestamp_seconds"
        stamp = self.value(self.scrape(), last, last)
        self.assertGreaterEqual(stamp, int(began), self.last_text)
        self.assertEqual(self.reloads("failure"), failed, self.last_text)

        crt = self.pki.crt("b")
        good = crt.read_bytes()
        self.addCleanup(crt.write_bytes, good)
        crt.write_bytes(b"not a certificate\n")
        p.daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: self.reloads("failure") > failed, 10, "the failed reload counted")
        self.greeted("mail.a.test")  # still serving
        ok = self.reloads("success")
        crt.write_bytes(good)
        p.daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: self.reloads("success") > ok, 10, "the mended reload counted")


if __name__ == "__main__":
    unittest.main()
