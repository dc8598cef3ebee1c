"""Prometheus metrics and health (issue 15, points 1 and 2): `[metrics] listen` serves
GET /metrics in the text format 0.0.4 (parsed with prometheus_client's own parser), /healthz and
/readyz (503 once the drain began). Real Dovecot behind postern; every wait is bounded.
"""

import json
import os
import signal
import ssl
import sys
import time
import unittest
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a python3 other than Debian's (pyenv): the package's pure-Python home
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

from harness import (LOCALHOST, PASSWORD, POSTERN_BIN, USER, Dovecot, IntegrationCase, LineClient,
                     Pki, Postern, free_port, plain_connect, run, tls_connect, wait_until)
from starttls_case import no_verify, recv_until
from test_restart import become_subreaper, wait_exit

FAMILIES = {  # name (as the parser names it: counters without _total) -> type
    "postern_sessions_active": "gauge",
    "postern_sessions": "counter",
    "postern_handshakes": "counter",
    "postern_resumed_handshakes": "counter",
    "postern_starttls": "counter",
    "postern_starttls_discarded_bytes": "counter",
    "postern_limit_rejected": "counter",
    "postern_certificate_served": "counter",
    "postern_sni_rejected": "counter",
    "postern_certificate_not_after_seconds": "gauge",
    "postern_certificate_reloads": "counter",
    "postern_certificate_last_reload_success_timestamp_seconds": "gauge",
    "postern_backend_connect_failures": "counter",
    "postern_build_info": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}


class MetricsPostern(Postern):
    """Postern with a [metrics] table (listen: "host:port", or None for none)."""

    def __init__(self, *args, metrics_listen=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metrics_listen = metrics_listen

    def config_text(self) -> str:
        text = super().config_text()
        if self.metrics_listen is not None:
            text += f'\n[metrics]\nlisten = "{self.metrics_listen}"\n'
        return text


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


class Metrics(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.dead = f"{LOCALHOST}:{free_port()}"  # nothing listens there
        cls.postern = cls.own(cls.new_postern(cls.tmp / "postern", "20s"))

    @classmethod
    def new_postern(cls, workdir, shutdown_timeout: str, user=None) -> MetricsPostern:
        p = MetricsPostern(workdir, cls.pki, metrics_listen=f"{LOCALHOST}:{free_port()}")
        p.server["shutdown_timeout"] = shutdown_timeout
        if user is not None:
            p.server["user"] = user
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("failover", [cls.dead, cls.dovecot.imap_address])
        p.listener("imap", "imap", "imap")  # implicit TLS
        p.listener("failover", "imap", "failover")
        p.listener("starttls", "imap", "imap", tls="starttls")
        p.start()
        wait_until(lambda: cls.status(p, "/healthz") == 200, 10, "the metrics endpoint",
                   proc=p.daemon.proc)
        return p

    @staticmethod
    def status(p: MetricsPostern, path: str) -> int:
        try:
            return get(f"http://{p.metrics_listen}{path}")[0]
        except OSError:
            return 0

    def scrape(self, p=None) -> dict:
        """{family name: Metric}, after checking the answer's content type."""
        p = p or self.postern
        code, ctype, body = get(f"http://{p.metrics_listen}/metrics")
        self.assertEqual(code, 200, body)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        self.last_text = body
        return {f.name: f for f in text_string_to_metric_families(body)}

    @staticmethod
    def value(families: dict, family: str, sample: str, **labels) -> float:
        """The sample's value with exactly these labels (0 when absent)."""
        for s in families[family].samples:
            if s.name == sample and s.labels == labels:
                return s.value
        return 0.0

    def imap_login(self, p: MetricsPostern, listener: str = "imap") -> LineClient:
        c = LineClient(tls_connect(p.port(listener), "mail.a.test"))
        self.addCleanup(c.close)
        self.assertTrue(c.readline().startswith("* OK"), c.transcript)
        self.assertIn(" OK ", c.imap("a1", f"LOGIN {USER} {PASSWORD}")[-1], c.transcript)
        return c

    def test_every_family_has_help_and_type(self):
        """Every sample's family has one # HELP and one # TYPE line, and the families the README
        lists are all there, with their types."""
        families = self.scrape()
        text = self.last_text
        for f in families.values():
            self.assertNotEqual(f.type, "unknown", f"{f.name} has no # TYPE")
            self.assertTrue(f.documentation, f"{f.name} has no # HELP")
        for name, kind in FAMILIES.items():
            self.assertIn(name, families, text)
            self.assertEqual(families[name].type, kind, name)
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name = line.split("{")[0].split(" ")[0]
            self.assertIn(f"# HELP {name} ", text, line)
            self.assertIn(f"# TYPE {name} ", text, line)
        listen = self.postern.listen_address("imap")
        build = families["postern_build_info"].samples[0]
        self.assertEqual(build.value, 1)
        self.assertRegex(build.labels["openssl"], r"^\d+\.\d+")
        self.assertGreater(self.value(families, "process_resident_memory_bytes",
                                      "process_resident_memory_bytes"), 1 << 20)
        start = self.value(families, "process_start_time_seconds", "process_start_time_seconds")
        self.assertLess(abs(start - time.time()), 3600)
        self.assertIn(listen, {s.labels.get("listener") for s in families["postern_sessions"].samples})

    def test_imaps_login_moves_the_counters_by_one(self):
        """One IMAPS login and LOGOUT: sessions_active is 1 while it is open and 0 after;
        sessions_total{end="client_quit"} and handshakes_total{result="ok",version="TLSv1.3"} move by
        exactly one, nothing else in them moves."""
        p = self.postern
        listen = p.listen_address("imap")
        before = self.scrape()
        self.assertEqual(self.value(before, "postern_sessions_active", "postern_sessions_active",
                                    listener=listen), 0)
        c = self.imap_login(p)
        during = self.scrape()
        self.assertEqual(self.value(during, "postern_sessions_active", "postern_sessions_active",
                                    listener=listen), 1)
        self.assertEqual(c.imap("a2", "LOGOUT")[-1].split(" ")[1], "OK", c.transcript)
        fields = p.session_end(c.local_port, "imap")
        self.assertEqual(fields["end"], "client_quit", fields["_line"])
        after = self.scrape()

        def delta(family, sample):
            keys = {tuple(sorted(s.labels.items())) for s in after[family].samples}
            return {k: self.value(after, family, sample, **dict(k)) -
                    self.value(before, family, sample, **dict(k)) for k in keys}

        moved = {k: v for k, v in delta("postern_sessions", "postern_sessions_total").items() if v}
        self.assertEqual(moved, {(("end", "client_quit"), ("listener", listen)): 1}, self.last_text)
        moved = {k: v for k, v in delta("postern_handshakes", "postern_handshakes_total").items()
                 if v}
        self.assertEqual(moved, {(("listener", listen), ("result", "ok"), ("version", "TLSv1.3")): 1},
                         self.last_text)
        self.assertEqual(self.value(after, "postern_sessions_active", "postern_sessions_active",
                                    listener=listen), 0)

    def test_backend_connect_failure_counted_by_address(self):
        """A login through a backend whose first address refuses: that address's
        postern_backend_connect_failures_total moves by one, the one that served does not."""
        p = self.postern
        family, sample = "postern_backend_connect_failures", "postern_backend_connect_failures_total"
        good = self.dovecot.imap_address
        before = self.scrape()
        c = self.imap_login(p, "failover")
        self.assertEqual(c.imap("a2", "LOGOUT")[-1].split(" ")[1], "OK", c.transcript)
        p.session_end(c.local_port, "failover")  # ended, so other tests' deltas stay still
        after = self.scrape()
        for address, moved in ((self.dead, 1), (good, 0)):
            labels = {"backend": "failover", "address": address}
            self.assertIn(labels, [s.labels for s in after[family].samples], self.last_text)
            self.assertEqual(self.value(after, family, sample, **labels) -
                             self.value(before, family, sample, **labels), moved, self.last_text)

    def test_starttls_and_discarded_bytes_counted(self):
        """A STARTTLS with a command pipelined behind it: postern_starttls_total moves by one and
        postern_starttls_discarded_bytes_total by the injected command's length."""
        p = self.postern
        listen = p.listen_address("starttls")
        injected = b"b LOGIN test secret\r\n"
        before = self.scrape()
        s = plain_connect(p.port("starttls"))
        recv_until(s, rb"^\* OK .*\r\n", "the greeting")
        s.sendall(b"a STARTTLS\r\n" + injected)  # one segment
        self.assertRegex(recv_until(s, rb"^a [A-Z]+ .*\r\n", "the STARTTLS reply"), rb"\Aa OK ")
        c = LineClient(no_verify().wrap_socket(s, server_hostname="mail.a.test"))
        self.addCleanup(c.close)
        c.imap("c", "LOGOUT")
        p.session_end(c.local_port, "starttls")
        after = self.scrape()
        for family, moved in (("postern_starttls", 1),
                              ("postern_starttls_discarded_bytes", len(injected))):
            sample = family + "_total"
            self.assertEqual(self.value(after, family, sample, listener=listen) -
                             self.value(before, family, sample, listener=listen), moved,
                             self.last_text)

    def test_certificate_not_after_is_the_files(self):
        """postern_certificate_not_after_seconds of each loaded certificate is its notAfter."""
        samples = self.scrape()["postern_certificate_not_after_seconds"].samples
        self.assertEqual(len(samples), len(Pki.CERTS), self.last_text)
        for name in Pki.CERTS:
            crt = self.pki.crt(name)
            decoded = ssl._ssl._test_decode_cert(str(crt))  # pylint: disable=protected-access
            expected = ssl.cert_time_to_seconds(decoded["notAfter"])
            dns = decoded["subjectAltName"][0][1]
            found = [s for s in samples if s.labels["certificate"] == dns]
            self.assertEqual(len(found), 1, self.last_text)
            self.assertEqual(found[0].labels["key_type"], "ecdsa")
            self.assertEqual(found[0].labels["file"], str(crt.resolve()))
            self.assertEqual(found[0].value, expected, name)

    def test_health_ready_and_not_found(self):
        """/healthz and /readyz answer 200 (HEAD too); other paths 404; POST is refused."""
        base = f"http://{self.postern.metrics_listen}"
        self.assertEqual(get(base + "/healthz")[0], 200)
        self.assertEqual(get(base + "/readyz")[0], 200)
        self.assertEqual(get(base + "/nothing")[0], 404)
        with urllib.request.urlopen(urllib.request.Request(base + "/readyz", method="HEAD"),
                                    timeout=5) as r:
            self.assertEqual(r.status, 200)
        try:
            code = urllib.request.urlopen(urllib.request.Request(base + "/metrics", data=b"x"),
                                          timeout=5).status
        except urllib.error.HTTPError as e:
            code = e.code
        self.assertEqual(code, 405)

    def test_certificates_json_is_the_check_report(self):
        """GET /certificates: the store serving now, as `postern check --json` reports it,
        with each certificate's DANE TLSA 3 1 1 digest."""
        status, _, body = get(f"http://{self.postern.metrics_listen}/certificates")
        self.assertEqual(status, 200)
        served = json.loads(body)["certificates"]
        self.assertEqual(len(served), len(Pki.CERTS))
        checked = json.loads(run([POSTERN_BIN, "check", "--json", "--config",
                                  self.postern.config]).stdout)["certificates"]
        key = lambda c: c["file"]
        for got, want in zip(sorted(served, key=key), sorted(checked, key=key)):
            self.assertEqual(got["names"], want["names"])
            self.assertEqual(got["tlsa_3_1_1"], want["tlsa_3_1_1"])
            self.assertRegex(got["tlsa_3_1_1"], r"^[0-9a-f]{64}$")

    def test_readyz_503_while_draining(self):
        """After SIGTERM, while a client keeps postern draining (a NOOP before each look),
        /readyz answers 503 and /healthz still 200; once the client leaves, postern exits 0."""
        p = self.own_for_test(self.new_postern(self.workdir_for_test() / "postern", "20s"))
        c = self.imap_login(p)
        self.assertEqual(self.status(p, "/readyz"), 200)
        c.imap("n0", "NOOP")
        p.daemon.send_signal(signal.SIGTERM)
        p.wait_log(r"stopping on signal 15", 5)
        n = [0]

        def draining():
            n[0] += 1
            self.assertIn(" OK ", c.imap(f"n{n[0]}", "NOOP")[-1], c.transcript)
            return self.status(p, "/readyz") == 503

        wait_until(draining, 5, "/readyz 503", proc=p.daemon.proc)
        self.assertEqual(self.status(p, "/healthz"), 200)
        c.imap("z", "LOGOUT")
        self.assertEqual(p.daemon.wait(10), 0)

    def test_replacement_binds_the_same_address(self):
        """SIGUSR2 under server.user: the replacement (started as root by the privileged helper,
        like the first process) binds the [metrics] address while the old process still holds
        it (SO_REUSEPORT; a bind failure would end it before it is ready), and answers there
        once the old one has exited."""
        become_subreaper()
        p = self.own_for_test(
            self.new_postern(self.workdir_for_test() / "postern", "20s", user="nobody"))
        since = p.log_size()
        os.kill(p.daemon.pid, signal.SIGUSR2)
        new_pid = int(p.wait_log(r"^.*replacement process (\d+) is ready.*$", 30, since).group(1))

        def stop_new():
            try:
                os.kill(new_pid, signal.SIGTERM)
                wait_exit(new_pid, 15)
            except (ProcessLookupError, ChildProcessError):
                pass

        self.addCleanup(stop_new)
        self.assertEqual(p.daemon.wait(30), 0)
        self.assertEqual(self.status(p, "/readyz"), 200)
        self.assertEqual(self.status(p, "/healthz"), 200)
        families = self.scrape(p)
        # Not dumpable under server.user, but a process may still read its own /proc/self/fd.
        self.assertGreater(self.value(families, "process_open_fds", "process_open_fds"), 3)
        self.assertGreater(self.value(families, "process_resident_memory_bytes",
                                      "process_resident_memory_bytes"), 1 << 20)

    def test_bad_listen_is_refused_naming_the_key(self):
        """`postern check` refuses a [metrics] listen that is no address, or a listener's,
        naming metrics.listen and where it was written."""
        p = MetricsPostern(self.workdir_for_test() / "check", self.pki, metrics_listen="nowhere")
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        r = p.check()
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"postern\.toml:\d+:\d+: metrics\.listen")
        p.metrics_listen = p.listen_address("imap")
        r = p.check()
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr,
                         r"postern\.toml:\d+:\d+: metrics\.listen.*already used by listener")
        p.metrics_listen = f"{LOCALHOST}:{free_port()}"
        r = p.check()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
