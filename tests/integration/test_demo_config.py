"""The demo (./scripts/demo) is the first thing a newcomer runs: its config must pass `postern
check` without a single warning, its certificates must verify against its root CA, and the
commands it prints must match the listeners it configures.

Uses the demo's own code (scripts/demo.py make_pki) and its own config (conf/demo.toml, copied
into a temp dir beside a fresh .demo/pki, so its relative paths hold). No servers are started.
"""

import re
import shutil
import sys
import tempfile
import tomllib
import unittest
from pathlib import Path

import harness

sys.path.insert(0, str(harness.REPO / "scripts"))
import demo  # noqa: E402


class DemoConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="postern-demo-config-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.config = cls.tmp / "conf" / "demo.toml"
        cls.config.parent.mkdir()
        shutil.copy(demo.CONFIG, cls.config)
        cls.root = demo.make_pki(cls.tmp / ".demo" / "pki")
        with open(demo.CONFIG, "rb") as f:
            cls.toml = tomllib.load(f)

    def test_check_passes_without_warnings(self):
        harness.require_postern()
        out = harness.run([harness.POSTERN_BIN, "check", "--config", self.config], timeout=30)
        text = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, text)
        warnings = [line for line in text.splitlines() if "warning" in line.lower()]
        self.assertEqual(warnings, [], text)
        self.assertRegex(out.stdout, r"(?m)demo\.toml: OK$", text)

    def test_every_certificate_verifies_against_the_root(self):
        for entry in self.toml["certificate"]:
            fullchain = self.config.parent / entry["cert"]
            with self.subTest(cert=entry["cert"]):
                out = harness.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile",
                                   self.root, "-untrusted", fullchain, fullchain])
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_printed_commands_cover_every_listener(self):
        printed = {}  # port -> the -starttls protocol, or "implicit"
        for port, starttls in re.findall(
                r"openssl s_client -connect 127\.0\.0\.1:(\d+)(?: -starttls (\w+))?", demo.TRY):
            printed[int(port)] = starttls or "implicit"
        configured = {}
        for listener in self.toml["listener"]:
            port = int(listener["listen"].rsplit(":", 1)[1])
            configured[port] = (listener["protocol"] if listener["tls"] == "starttls"
                                else "implicit")
        implicit = {p for p, kind in configured.items() if kind == "implicit"}
        self.assertTrue(implicit & set(printed), f"no implicit-TLS port in {printed}")
        for port, kind in configured.items():
            if kind != "implicit":
                self.assertEqual(printed.get(port), kind, f"s_client -starttls line for {port}")
        for port in printed:
            self.assertIn(port, configured, f"printed port {port} is not in conf/demo.toml")

    def test_backends_are_where_the_demo_starts_them(self):
        addresses = {b["name"]: b["address"] for b in self.toml["backend"]}
        self.assertEqual(addresses, {
            "imap": f"127.0.0.1:{demo.DOVECOT_PROXY_PORTS[0]}",
            "pop3": f"127.0.0.1:{demo.DOVECOT_PROXY_PORTS[1]}",
            "smtp": f"127.0.0.1:{demo.POSTFIX_PROXY_PORT}",
        })
        # The backends learn each client's address: no MX open relay by way of postern.
        self.assertEqual({b["name"]: b.get("send_proxy") for b in self.toml["backend"]},
                         {"imap": "v2", "pop3": "v2", "smtp": "v2"})


if __name__ == "__main__":
    unittest.main()
