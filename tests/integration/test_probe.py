"""`postern probe HOST:PORT`: the one-shot TLS client of the "certificates in production" issue.

Probes postern's implicit TLS listeners (certificate per --servername, wildcard, chain, name
mismatch -> exit 3, unknown CA -> exit 4, strict SNI refusal -> exit 2, a down backend -> exit 1
after TLS), Dovecot's own STARTTLS/STLS and Postfix's own STARTTLS (so the probe works against
servers other than postern), postern's STARTTLS listeners, and the usage / connection / timeout
errors (exit 1). The JSON form is parsed and checked field by field.
"""

import json
import socket
import time
import unittest

from harness import (LOCALHOST, POSTERN_BIN, Dovecot, IntegrationCase, Pki, Postern, Postfix,
                     free_port, require_postern, run)

CA_SUBJECT = "CN=postern integration test CA"


def probe(*args, timeout: float = 60):
    require_postern()
    return run([POSTERN_BIN, "probe", *args], timeout=timeout)


def probe_json(*args, **kw) -> tuple[int, dict, str]:
    """(exit code, parsed JSON report, stderr)."""
    out = probe(*args, "--json", **kw)
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"not JSON ({e}):\n{out.stdout}\nstderr:\n{out.stderr}") from None
    return out.returncode, report, out.stderr


class ProbeCase(IntegrationCase):
    def assert_exit(self, out, code: int):
        self.assertEqual(out.returncode, code, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}")

    def assert_ok_report(self, report: dict, *, dns: list, protocol: str):
        """A verified, name-matching report whose leaf covers `dns`."""
        self.assertTrue(report["ok"], report)
        self.assertEqual(report["exit_code"], 0)
        self.assertIsNone(report["error"])
        self.assertEqual(report["protocol"], protocol)
        self.assertIn(report["tls"]["version"], ("TLSv1.2", "TLSv1.3"))
        self.assertTrue(report["tls"]["cipher"])
        leaf = report["chain"][0]
        self.assertEqual(leaf["dns_names"], dns)
        self.assertEqual(leaf["subject"], f"CN={dns[0]}")
        self.assertEqual(leaf["issuer"], CA_SUBJECT)
        self.assertTrue(report["name"]["matches"])
        self.assertEqual(report["verify"], {"ok": True, "result": "ok",
                                            "trust": f"--cafile {self.pki.ca}"})
        self.assertIsInstance(report["capabilities"], list)
        self.assertTrue(report["capabilities"], report)
        return leaf


class ProbePostern(ProbeCase):
    """postern's implicit TLS listeners in front of plain Dovecot and Postfix."""

    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        p.backend("nowhere", f"{LOCALHOST}:{free_port()}")
        for proto in ("imap", "pop3", "smtp"):
            p.listener(proto, proto, proto)
            p.listener(f"{proto}_dead", proto, "nowhere")
        p.listener("imap6", "imap", "imap", host="::1")
        p.start()
        s = cls.strict = cls.own(Postern(cls.tmp / "postern-strict", cls.pki, strict_sni=True))
        s.backend("imap", cls.dovecot.imap_address)
        s.listener("imap", "imap", "imap")
        s.start()

    def target(self, listener: str, postern=None) -> str:
        return f"{LOCALHOST}:{(postern or self.postern).port(listener)}"

    def test_implicit_tls_on_every_protocol_verifies(self):
        caps = {"imap": "IMAP4rev1", "pop3": "UIDL", "smtp": "PIPELINING"}
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                out = probe(self.target(proto), "--servername", "mail.a.test",
                            "--cafile", self.pki.ca)
                self.assert_exit(out, 0)
                lines = out.stdout.splitlines()
                self.assertRegex(out.stdout, rf"(?m)^server +{self.target(proto)}, implicit TLS, {proto}$")
                self.assertRegex(out.stdout, r"(?m)^tls +TLSv1\.[23], \S+")
                self.assertIn("certificate 1 CN=mail.a.test", lines)
                self.assertRegex(out.stdout, r"(?m)^  names +mail\.a\.test$")
                self.assertRegex(out.stdout, rf"(?m)^  issuer +{CA_SUBJECT}$")
                self.assertRegex(out.stdout, r"(?m)^  not after +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                                             r"\((30|31) days left\)$")
                self.assertRegex(out.stdout, r"(?m)^name +mail\.a\.test matches the certificate$")
                self.assertRegex(out.stdout, rf"(?m)^chain +verified against --cafile {self.pki.ca}$")
                self.assertRegex(out.stdout, rf"(?m)^capabilities .*\b{caps[proto]}\b")
                # postern filters these after TLS
                self.assertNotRegex(out.stdout, r"(?m)^capabilities .*\b(STARTTLS|STLS)\b")
                self.assertEqual(lines[-1].split(), ["result", "ok"])
                self.assertEqual(out.stderr, "")

    def test_servername_selects_certificate_and_json_carries_the_chain(self):
        rc, report, err = probe_json(self.target("imap"), "--servername", "mail.b.test",
                                     "--cafile", self.pki.ca)
        self.assertEqual(rc, 0, err)
        leaf = self.assert_ok_report(report, dns=["mail.b.test"], protocol="imap")
        self.assertEqual(report["target"], self.target("imap"))
        self.assertEqual(report["address"], self.target("imap"))
        self.assertIsNone(report["starttls"])
        self.assertEqual(report["servername"], "mail.b.test")
        self.assertEqual(report["name"], {"checked": "mail.b.test", "matches": True})
        self.assertEqual(leaf["ip_addresses"], [])
        want = self.pki.not_after("b").strftime("%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(leaf["not_after"], want)
        self.assertIn(leaf["days_left"], (31, 32))  # issued for 32 days, seconds ago
        # b's file carries the CA after the leaf, and postern sends it
        self.assertEqual(len(report["chain"]), 2, report["chain"])
        self.assertEqual(report["chain"][1]["subject"], CA_SUBJECT)
        self.assertEqual(report["chain"][1]["issuer"], CA_SUBJECT)
        self.assertIn("IMAP4rev1", report["capabilities"])
        self.assertNotIn("STARTTLS", report["capabilities"])
        self.assertIsNone(report["capabilities_note"])
        self.assertIsNone(report["handshake_error"])

    def test_wildcard_certificate_matches_one_label(self):
        rc, report, err = probe_json(self.target("pop3"), "--servername", "x.c.test",
                                     "--cafile", self.pki.ca)
        self.assertEqual(rc, 0, err)
        self.assert_ok_report(report, dns=["*.c.test"], protocol="pop3")
        self.assertEqual(report["name"], {"checked": "x.c.test", "matches": True})

    def test_name_the_certificate_does_not_cover_exits_3(self):
        # *.c.test covers one label only: postern serves the default certificate
        out = probe(self.target("smtp"), "--servername", "a.b.c.test", "--cafile", self.pki.ca)
        self.assert_exit(out, 3)
        self.assertIn("certificate 1 CN=mail.default", out.stdout.splitlines())
        self.assertRegex(out.stdout, r"(?m)^name +a\.b\.c\.test does NOT match the certificate$")
        self.assertRegex(out.stdout, r"(?m)^chain +verified against")
        self.assertIn("postern probe: name mismatch: the certificate does not cover a.b.c.test "
                      "(it covers: mail.default)", out.stderr)
        self.assertRegex(out.stdout, r"(?m)^result +FAILED \(exit 3\): name mismatch")
        rc, report, _ = probe_json(self.target("smtp"), "--servername", "a.b.c.test",
                                   "--cafile", self.pki.ca)
        self.assertEqual(rc, 3)
        self.assertFalse(report["ok"])
        self.assertEqual(report["exit_code"], 3)
        self.assertEqual(report["name"], {"checked": "a.b.c.test", "matches": False})
        self.assertTrue(report["verify"]["ok"])
        self.assertEqual(report["chain"][0]["dns_names"], ["mail.default"])
        self.assertIn("name mismatch", report["error"])

    def test_ip_target_sends_no_sni_and_checks_the_address(self):
        rc, report, err = probe_json(self.target("imap"), "--cafile", self.pki.ca)
        self.assertEqual(rc, 3, err)
        self.assertIsNone(report["servername"])
        self.assertEqual(report["name"], {"checked": LOCALHOST, "matches": False})
        self.assertEqual(report["chain"][0]["dns_names"], ["mail.default"])  # no SNI: default
        self.assertIn("does not cover 127.0.0.1", err)

    def test_ca_not_in_system_store_exits_4(self):
        out = probe(self.target("imap"), "--servername", "mail.a.test")
        self.assert_exit(out, 4)
        self.assertRegex(out.stdout, r"(?m)^name +mail\.a\.test matches the certificate$")
        self.assertRegex(out.stdout, r"(?m)^chain +does NOT verify against the system store: "
                                     r"unable to get local issuer certificate$")
        self.assertIn("postern probe: the chain does not verify against the system store", out.stderr)
        rc, report, _ = probe_json(self.target("imap"), "--servername", "mail.a.test")
        self.assertEqual(rc, 4)
        self.assertEqual(report["verify"], {"ok": False, "result": "unable to get local issuer certificate",
                                            "trust": "the system store"})
        self.assertTrue(report["name"]["matches"])
        self.assertEqual(report["exit_code"], 4)

    def test_wrong_cafile_exits_4(self):
        other = Pki(self.workdir_for_test() / "other-pki")
        out = probe(self.target("imap"), "--servername", "mail.a.test", "--cafile", other.ca)
        self.assert_exit(out, 4)

    def test_mismatch_wins_over_unverified(self):
        out = probe(self.target("imap"), "--servername", "nothing.test")
        self.assert_exit(out, 3)
        self.assertRegex(out.stdout, r"(?m)^chain +does NOT verify")

    def test_strict_sni_refusal_is_a_failed_handshake_exit_2(self):
        out = probe(self.target("imap", self.strict), "--servername", "unknown.test",
                    "--cafile", self.pki.ca)
        self.assert_exit(out, 2)
        self.assertIn("TLS handshake failed", out.stderr)
        self.assertIn("unrecognized name", out.stderr)
        self.assertNotRegex(out.stdout, r"(?m)^certificate")
        rc, report, _ = probe_json(self.target("imap", self.strict), "--servername", "unknown.test",
                                   "--cafile", self.pki.ca)
        self.assertEqual(rc, 2)
        self.assertIsNone(report["tls"])
        self.assertIn("unrecognized name", report["handshake_error"])
        self.assertEqual(report["chain"], [])
        # a covered name still works there
        self.assert_exit(probe(self.target("imap", self.strict), "--servername", "mail.a.test",
                               "--cafile", self.pki.ca), 0)

    def test_ipv6_target(self):
        target = f"[::1]:{self.postern.port('imap6')}"
        rc, report, err = probe_json(target, "--servername", "mail.a.test", "--cafile", self.pki.ca)
        self.assertEqual(rc, 0, err)
        self.assertEqual(report["address"], target)
        self.assert_ok_report(report, dns=["mail.a.test"], protocol="imap")

    def test_backend_down_is_a_protocol_error_after_tls(self):
        for proto, word in (("imap", "BYE"), ("pop3", "-ERR"), ("smtp", "421")):
            with self.subTest(protocol=proto):
                rc, report, err = probe_json(self.target(f"{proto}_dead"), "--servername",
                                             "mail.a.test", "--cafile", self.pki.ca)
                self.assertEqual(rc, 1, err)
                # the certificate part is there and fine
                self.assertTrue(report["name"]["matches"])
                self.assertTrue(report["verify"]["ok"])
                self.assertEqual(report["protocol"], proto)
                self.assertIsNone(report["capabilities"])
                self.assertIn(word, report["error"])

    def test_connection_refused_exits_1(self):
        rc, report, err = probe_json(f"{LOCALHOST}:{free_port()}", "--servername", "mail.a.test")
        self.assertEqual(rc, 1)
        self.assertIn("Connection refused", report["error"])
        self.assertIsNone(report["tls"])
        self.assertIsNone(report["address"])
        self.assertIn("postern probe: connect ", err)

    def test_usage_errors_exit_1(self):
        for args in (["no-port"], ["127.0.0.1:0"], ["::1:993"], [self.target("imap"), "--timeout", "soon"],
                     [self.target("imap"), "--starttls", "ftp"], [self.target("imap"), "--cafile", "/nonexistent"],
                     [self.target("imap"), "--servername", "bad name"], []):
            with self.subTest(args=args):
                out = probe(*args)
                self.assert_exit(out, 1)
                self.assertTrue(out.stderr.strip())
                self.assertEqual(out.stdout, "")

    def test_silent_server_times_out(self):
        # accepts TCP (the kernel does, from the backlog) but never answers
        silent = socket.socket()
        silent.bind((LOCALHOST, 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        target = "%s:%d" % silent.getsockname()
        for args, code in ((["--servername", "mail.a.test"], 2),
                           (["--starttls", "imap"], 1)):
            with self.subTest(args=args):
                start = time.monotonic()
                out = probe(target, "--timeout", "1", *args)
                self.assert_exit(out, code)
                self.assertIn("no answer within 1s", out.stderr)
                self.assertLess(time.monotonic() - start, 8)


class ProbeOtherServers(ProbeCase):
    """Servers doing their own TLS: Dovecot's STARTTLS/STLS and Postfix's STARTTLS."""

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot-tls", starttls=True, pki=cls.pki)).start()
        cls.plain = cls.own(Dovecot(cls.tmp / "dovecot-plain")).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix", pki=cls.pki)).start()

    def test_dovecot_imap_starttls(self):
        rc, report, err = probe_json(self.dovecot.imap_address, "--starttls", "imap",
                                     "--servername", "mail.default", "--cafile", self.pki.ca)
        self.assertEqual(rc, 0, err)
        self.assert_ok_report(report, dns=["mail.default"], protocol="imap")
        self.assertEqual(report["starttls"], "imap")
        self.assertIn("IMAP4rev1", report["capabilities"])
        self.assertNotIn("STARTTLS", report["capabilities"])  # the TLS-side list
        self.assertNotIn("LOGINDISABLED", report["capabilities"])
        out = probe(self.dovecot.imap_address, "--starttls", "imap", "--servername", "mail.default",
                    "--cafile", self.pki.ca)
        self.assert_exit(out, 0)
        self.assertRegex(out.stdout, rf"(?m)^server +{self.dovecot.imap_address}, STARTTLS imap$")

    def test_dovecot_pop3_stls(self):
        rc, report, err = probe_json(self.dovecot.pop3_address, "--starttls", "pop3",
                                     "--servername", "mail.default", "--cafile", self.pki.ca)
        self.assertEqual(rc, 0, err)
        self.assert_ok_report(report, dns=["mail.default"], protocol="pop3")
        self.assertIn("UIDL", report["capabilities"])
        self.assertNotIn("STLS", report["capabilities"])

    def test_dovecot_name_mismatch_and_unknown_ca(self):
        rc, _, err = probe_json(self.dovecot.imap_address, "--starttls", "imap",
                                "--servername", "mail.a.test", "--cafile", self.pki.ca)
        self.assertEqual(rc, 3, err)
        rc, _, err = probe_json(self.dovecot.pop3_address, "--starttls", "pop3",
                                "--servername", "mail.default")
        self.assertEqual(rc, 4, err)

    def test_postfix_smtp_starttls(self):
        rc, report, err = probe_json(self.postfix.tls_address, "--starttls", "smtp",
                                     "--servername", "mail.default", "--cafile", self.pki.ca)
        self.assertEqual(rc, 0, err)
        self.assert_ok_report(report, dns=["mail.default"], protocol="smtp")
        self.assertIn("PIPELINING", report["capabilities"])
        self.assertNotIn("STARTTLS", report["capabilities"])
        self.assertTrue(any(c.startswith("SIZE") for c in report["capabilities"]), report)

    def test_server_without_starttls_is_a_clear_error(self):
        cases = [
            (self.postfix.address, "smtp", "the server does not offer STARTTLS (EHLO lists:"),
            (self.plain.imap_address, "imap", "the server does not offer STARTTLS"),
            (self.plain.pop3_address, "pop3", "the server refused STLS: -ERR"),
        ]
        for address, proto, message in cases:
            with self.subTest(protocol=proto):
                out = probe(address, "--starttls", proto, "--servername", "mail.default",
                            "--cafile", self.pki.ca)
                self.assert_exit(out, 1)
                self.assertIn(message, out.stderr)
                self.assertNotRegex(out.stdout, r"(?m)^tls ")

    def test_wrong_protocol_is_a_clear_error(self):
        out = probe(self.dovecot.pop3_address, "--starttls", "imap", "--servername", "mail.default")
        self.assert_exit(out, 1)
        self.assertIn("not an IMAP greeting: +OK", out.stderr)
        out = probe(self.dovecot.imap_address, "--starttls", "smtp", "--servername", "mail.default")
        self.assert_exit(out, 1)
        self.assertIn("malformed SMTP reply: * OK", out.stderr)

    def test_implicit_tls_against_a_plaintext_port_fails_the_handshake(self):
        out = probe(self.plain.imap_address, "--servername", "mail.default", "--timeout", "3")
        self.assert_exit(out, 2)
        self.assertIn("TLS handshake failed", out.stderr)


class ProbePosternStartTls(ProbeCase):
    """postern's own STARTTLS listeners (the STARTTLS issue). Separate class: if postern cannot
    serve STARTTLS yet, only these fail."""

    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        for proto in ("imap", "pop3", "smtp"):
            p.listener(proto, proto, proto, tls="starttls")
        p.start()

    def test_starttls_on_every_protocol(self):
        caps = {"imap": "IMAP4rev1", "pop3": "UIDL", "smtp": "PIPELINING"}
        hidden = {"imap": "STARTTLS", "pop3": "STLS", "smtp": "STARTTLS"}
        for proto in ("imap", "pop3", "smtp"):
            with self.subTest(protocol=proto):
                target = f"{LOCALHOST}:{self.postern.port(proto)}"
                rc, report, err = probe_json(target, "--starttls", proto,
                                             "--servername", "mail.b.test", "--cafile", self.pki.ca)
                self.assertEqual(rc, 0, f"{err}\n{json.dumps(report, indent=2)}")
                self.assert_ok_report(report, dns=["mail.b.test"], protocol=proto)
                self.assertIn(caps[proto], " ".join(report["capabilities"]))
                self.assertNotIn(hidden[proto], report["capabilities"])


if __name__ == "__main__":
    unittest.main()
