"""testssl.sh against postern's STARTTLS listeners (SMTP, IMAP, POP3): no SSLv2/3, no TLS 1.0/1.1,
no NULL, anonymous, export, LOW (64-bit, DES, RC2, RC4) or 3DES/IDEA ciphers, no obsolete CBC
suites; TLS 1.2, TLS 1.3 and AEAD suites offered.

testssl's exit code is not pass/fail (recipes section 5): its --jsonfile is parsed instead. Each
run is narrowed to protocols (-p) and cipher categories (-s; RC4 is in its LOW category), with
--ip and --nodns none so that nothing is resolved and the hostname is only the SNI; about 17 s
each.
Registered as its own ctest entry (integration_testssl) because it is slow.
"""

import json
import re
import shutil
import unittest

from harness import LOCALHOST, IntegrationCase, run

NOT_OFFERED = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL",
               "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"]
OFFERED = ["TLS1_2", "TLS1_3", "cipherlist_STRONG"]


@unittest.skipUnless(shutil.which("testssl"), "testssl (Debian package testssl.sh) is not installed")
class TestsslStartTls(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        p = cls.start_mail_servers()
        p.server["hostname"] = "mx.postern.test"
        p.backend("imap", cls.dovecot.imap_address)
        p.backend("pop3", cls.dovecot.pop3_address)
        p.backend("smtp", cls.postfix.address)
        p.listener("imap", "imap", "imap", tls="starttls")
        p.listener("pop3", "pop3", "pop3", tls="starttls")
        p.listener("smtp", "smtp", "smtp", tls="starttls", submission=True)
        p.start()

    def run_testssl(self, proto: str, sni: str) -> dict:
        out_json = self.tmp / f"testssl-{proto}.json"
        out_json.unlink(missing_ok=True)
        res = run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
                   "--ip", LOCALHOST, "--add-ca", self.pki.ca, "-p", "-s",
                   "--jsonfile", out_json, "-t", proto, f"{sni}:{self.postern.port(proto)}"],
                  timeout=180)
        self.assertTrue(out_json.exists(), f"no JSON from testssl (exit {res.returncode}):\n"
                                           f"{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
        entries = json.loads(out_json.read_text())
        by_id = {e["id"]: e for e in entries}
        by_id["_text"] = res.stdout
        return by_id

    def check(self, proto: str, sni: str) -> None:
        found = self.run_testssl(proto, sni)
        text = found.pop("_text")
        self.assertEqual(found.get("service", {}).get("finding"), proto,
                         f"testssl did not speak STARTTLS/{proto}:\n{text[-3000:]}")
        for key in NOT_OFFERED:
            with self.subTest(protocol=proto, check=key):
                self.assertIn(key, found, text[-3000:])
                self.assertEqual(found[key]["finding"], "not offered", found[key])
        for key in OFFERED:
            with self.subTest(protocol=proto, check=key):
                self.assertIn(key, found, text[-3000:])
                self.assertTrue(found[key]["finding"].startswith("offered"), found[key])
        bad = {k: v for k, v in found.items() if v.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")}
        self.assertEqual(bad, {}, "testssl findings of MEDIUM severity or worse")
        # testssl's full handshakes (its TLS 1.3 probes stop after the ServerHello) were served
        # the certificate its SNI names
        line = self.postern.wait_log(
            r"^.*\bsession end\b.*\blistener=" + re.escape(self.postern.listen_address(proto))
            + r"\s.*\bsni=" + re.escape(sni) + r"\s.*\btls=TLSv1\.[23]\s.*$").group(0)
        self.assertIn(" cert=" + sni + " ", line)

    def test_smtp(self):
        self.check("smtp", "mail.a.test")

    def test_imap(self):
        self.check("imap", "mail.b.test")

    def test_pop3(self):
        self.check("pop3", "mail.a.test")


if __name__ == "__main__":
    unittest.main()
