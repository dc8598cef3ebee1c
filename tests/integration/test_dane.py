"""Certificates and DANE: `postern check` prints each certificate's TLSA `3 1 1` record data (the
SHA-256 of the leaf's SubjectPublicKeyInfo, as the openssl command line computes it) as
ready-to-paste records per name and listener port, `postern check --json` the same report as
JSON, and a certbot-style renewal that changes the public key of a certificate whose names did
not change is logged with both digests (one that keeps the key, `--reuse-key`, is not).
"""

import json
import os
import re
import shutil

from harness import IntegrationCase, Pki, Postern, POSTERN_BIN, require_postern, run

WARNING = r"the public key changed at reload"


def link(target: str, name) -> None:
    """Atomically points symlink `name` at `target` (create aside, rename over), like certbot."""
    tmp = f"{name}.new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, name)


class CheckReport(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        require_postern()
        cls.pki = Pki(cls.tmp / "pki")
        cls.pki.add("mx", ["mx.dane.test", "smtp.dane.test"], 40)
        cls.pki.add("rsa", ["mail.rsa.test"], 41, key="rsa")
        p = cls.p = Postern(cls.tmp / "postern", cls.pki, certificates=["default", "mx", "rsa", "c"])
        p.backend("smtp", "127.0.0.1:1")
        p.backend("imap", "127.0.0.1:2")
        p.listener("smtp", "smtp", "smtp", tls="starttls")
        p.listener("imaps", "imap", "imap")
        cls.config = p.write_config()

    def test_check_prints_tlsa_records_computed_as_openssl_does(self):
        out = run([POSTERN_BIN, "check", "--config", self.config])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        smtp, imaps = self.p.port("smtp"), self.p.port("imaps")
        for short in ("mx", "rsa", "default"):
            digest = self.pki.tlsa_3_1_1(short)
            self.assertRegex(digest, r"^[0-9a-f]{64}$")
            with self.subTest(short=short):
                self.assertIn(f"  TLSA 3 1 1:  {digest}\n", out.stdout)
                for name in self.pki.names(short):
                    # SMTP's port first, then the other listeners'
                    self.assertRegex(out.stdout, rf"(?m)^  _{smtp}\._tcp\.{re.escape(name)}\. "
                                                 rf"IN TLSA 3 1 1 {digest}\n"
                                                 rf"  _{imaps}\._tcp\.{re.escape(name)}\. "
                                                 rf"IN TLSA 3 1 1 {digest}$")
        self.assertIn("  key:         RSA 2048\n", out.stdout)
        self.assertIn("  key:         ECDSA P-256\n", out.stdout)
        # a wildcard has no TLSA owner name of its own
        self.assertNotRegex(out.stdout, r"_\d+\._tcp\.\*")
        self.assertIn("(*.c.test: publish a TLSA record under each host name it serves)", out.stdout)
        self.assertRegex(out.stdout, r"OK( with \d+ warning\(s\))?\n$")

    def test_check_json(self):
        out = run([POSTERN_BIN, "check", "--json", "--config", self.config])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        report = json.loads(out.stdout)
        by_file = {os.path.basename(c["file"]): c for c in report["certificates"]}
        self.assertEqual(set(by_file), {"default.crt", "mx.crt", "rsa.crt", "c.crt"})
        mx = by_file["mx.crt"]
        self.assertEqual(mx["names"], ["mx.dane.test", "smtp.dane.test"])
        self.assertEqual(mx["key_type"], "ECDSA P-256")
        self.assertEqual(by_file["rsa.crt"]["key_type"], "RSA 2048")
        self.assertEqual(mx["tlsa_3_1_1"], self.pki.tlsa_3_1_1("mx"))
        self.assertEqual(mx["not_after"], self.pki.not_after("mx").strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.assertIsInstance(mx["not_after_unix"], int)
        self.assertIn(mx["days_left"], (39, 40))
        self.assertFalse(mx["expired"])
        self.assertEqual(mx["chain"], "missing intermediate")  # the Pki's leaves come alone
        self.assertIs(mx["leaf_first"], True)

    def test_json_errors_still_exit_1(self):
        text = self.p.config_text().replace('cert = "../pki/mx.crt"', 'cert = "../pki/gone.crt"')
        path = self.p.write_config(self.tmp / "broken.toml", text=text)
        out = run([POSTERN_BIN, "check", "--json", "--config", path])
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertEqual(out.stdout, "")
        self.assertIn("gone.crt", out.stderr)


class ReloadKeyChange(IntegrationCase):
    """A certbot folder (live/ links into archive/) renewed in place, as certbot renew does."""

    def setUp(self):
        require_postern()
        work = self.workdir_for_test()
        self.pki = Pki(work / "pki")
        self.pki.add("m1", ["mx.dane.test"], 40)
        self.pki.add("m2", ["mx.dane.test"], 41)                  # a new key
        self.pki.add("m3", ["mx.dane.test"], 42, reuse_key="m1")  # certbot --reuse-key
        self.live = work / "letsencrypt" / "live"
        self.archive = work / "letsencrypt" / "archive" / "mx.dane.test"
        self.archive.mkdir(parents=True)
        (self.live / "mx.dane.test").mkdir(parents=True)
        self.certbot_issue("m1", 1)
        p = self.postern = self.own_for_test(Postern(work / "postern", self.pki,
                                                     certificates=["default"]))
        p.tls["certificates_dir"] = str(self.live)
        p.backend("smtp", "127.0.0.1:1")
        p.listener("smtp", "smtp", "smtp")
        p.start()

    def certbot_issue(self, short: str, n: int) -> None:
        shutil.copy(self.pki.crt(short), self.archive / f"fullchain{n}.pem")
        shutil.copy(self.pki.key(short), self.archive / f"privkey{n}.pem")
        live = self.live / "mx.dane.test"
        link(f"../../archive/mx.dane.test/fullchain{n}.pem", live / "fullchain.pem")
        link(f"../../archive/mx.dane.test/privkey{n}.pem", live / "privkey.pem")

    def renew(self, short: str, n: int) -> str:
        """Renews, waits for the reload, returns what postern logged meanwhile."""
        since = self.postern.log_size()
        self.certbot_issue(short, n)
        self.postern.wait_log(r"certificates reloaded", 15, since=since)
        return self.postern.log.read_text()[since:]

    def test_new_key_is_warned_with_both_digests(self):
        old, new = self.pki.tlsa_3_1_1("m1"), self.pki.tlsa_3_1_1("m2")
        self.assertNotEqual(old, new)
        log = self.renew("m2", 2)
        lines = [l for l in log.splitlines() if WARNING in l]
        self.assertEqual(len(lines), 1, log)
        self.assertIn(f"mx.dane.test: {WARNING} (TLSA 3 1 1 old {old} -> new {new}", lines[0])
        self.assertIn("publish the new TLSA record before the old one is withdrawn", lines[0])
        self.assertIn("certbot --reuse-key", lines[0])

    def test_reused_key_is_not_warned(self):
        self.assertEqual(self.pki.tlsa_3_1_1("m3"), self.pki.tlsa_3_1_1("m1"))
        log = self.renew("m3", 2)
        self.assertNotIn(WARNING, log)
