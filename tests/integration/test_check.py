"""`postern check --config FILE`: exit 0 and a certificate table for a good config (then the
listeners with their routes and PROXY sources, the backends with how each learns the client,
and a warning for an MX whose backend learns nothing); exit 1 with `FILE:LINE:COL: key: message`
errors naming the offending key for broken ones."""

import re
import unittest
from pathlib import Path

from harness import IntegrationCase, Pki, Postern, run, POSTERN_BIN, require_postern


def block_range(text: str, header: str, index: int) -> tuple[int, int]:
    """1-based first/last line of the index-th (1-based) `header` table in a TOML text."""
    lines = text.splitlines()
    starts = [i for i, l in enumerate(lines) if l.strip() == header]
    start = starts[index - 1]
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    return start + 1, end


def line_of(text: str, needle: str) -> int:
    for i, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return i
    raise AssertionError(f"{needle!r} not in config")


class Check(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        require_postern()
        cls.pki = Pki(cls.tmp / "pki")
        cls.pki.add("rsa", ["mail.rsa.test", "imap.rsa.test"], 34, key="rsa")

    def config(self, name: str, **kw) -> Postern:
        p = Postern(self.tmp / name, self.pki, **kw)
        p.backend("imap", "127.0.0.1:1")
        p.backend("smtp", "127.0.0.1:2")
        p.listener("imap", "imap", "imap")
        p.listener("smtp", "smtp", "smtp")
        return p

    def errors(self, out, config: Path) -> list[tuple[int, int, str, str]]:
        """(line, column, key, message) for each `FILE:LINE:COL: key: message` line on stderr."""
        rx = re.compile(r"^" + re.escape(str(config)) + r":(\d+):(\d+): ([^:\s]+): (.+)$", re.M)
        return [(int(a), int(b), k, m) for a, b, k, m in rx.findall(out.stderr)]

    def assert_error(self, out, config: Path, key_rx: str, lines: tuple[int, int], *words: str):
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        errors = self.errors(out, config)
        hits = [e for e in errors if re.fullmatch(key_rx, e[2])]
        self.assertTrue(hits, f"no error for key {key_rx} in:\n{out.stderr}")
        line, column, key, msg = hits[0]
        self.assertTrue(lines[0] <= line <= lines[1],
                        f"{key} reported at line {line}, expected within {lines}:\n{out.stderr}")
        self.assertGreaterEqual(column, 1)
        for w in words:
            self.assertIn(w.lower(), msg.lower(), out.stderr)

    def test_good_config_prints_certificate_table(self):
        p = self.config("good", certificates=["default", "a", "b", "c", "rsa"])
        path = p.write_config()
        out = run([POSTERN_BIN, "check", "--config", path], cwd="/")  # relative paths: config's folder
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        for short in ("default", "a", "b", "c", "rsa"):
            date = self.pki.not_after(short).strftime("%Y-%m-%d")
            for name in self.pki.names(short):
                with self.subTest(name=name):
                    rows = [l for l in out.stdout.splitlines()
                            if re.search(r"(^|\s)" + re.escape(name) + r"(\s|$)", l)]
                    self.assertTrue(rows, f"no row for {name}:\n{out.stdout}")
                    row = rows[0]
                    self.assertIn(f"{short}.crt", row)
                    self.assertIn(date, row, f"not-after of {short}")
                    self.assertRegex(row, r"RSA" if short == "rsa" else r"EC", row)
                    if short != "rsa":
                        self.assertNotIn("RSA", row)

    def test_key_not_matching_certificate(self):
        p = self.config("mismatch", certificates=["default", "a"])
        text = p.config_text().replace('key = "../pki/a.key"', 'key = "../pki/b.key"')
        self.assertIn("../pki/b.key", text)
        path = p.write_config(text=text)
        out = run([POSTERN_BIN, "check", "--config", path])
        self.assert_error(out, path, r"certificate\[2\](\.key)?", block_range(text, "[[certificate]]", 2), "b.key")

    def test_missing_certificate_file(self):
        p = self.config("missing", certificates=["default", "a"])
        text = p.config_text().replace('cert = "../pki/default.crt"', 'cert = "../pki/nothere.crt"')
        path = p.write_config(text=text)
        out = run([POSTERN_BIN, "check", "--config", path])
        line = line_of(text, "nothere.crt")
        self.assert_error(out, path, r"certificate\[1\]\.cert", (line, line), "nothere.crt")

    def test_unknown_backend_name(self):
        p = self.config("unknown-backend")
        p.listener("imap2", "imap", "imapx")
        text = p.config_text()
        path = p.write_config()
        out = run([POSTERN_BIN, "check", "--config", path])
        line = line_of(text, 'backend = "imapx"')
        self.assert_error(out, path, r"listener\[3\]\.backend", (line, line), "imapx")

    def test_all_errors_reported_at_once(self):
        p = self.config("several")
        p.listener("pop3", "pop3", "pop3x")
        text = p.config_text().replace('cert = "../pki/b.crt"', 'cert = "../pki/gone.crt"')
        path = p.write_config(text=text)
        out = run([POSTERN_BIN, "check", "--config", path])
        self.assert_error(out, path, r"certificate\[3\]\.cert", block_range(text, "[[certificate]]", 3), "gone.crt")
        self.assert_error(out, path, r"listener\[3\]\.backend", block_range(text, "[[listener]]", 3), "pop3x")

    def test_default_certificate_not_covered(self):
        p = self.config("no-default", default_certificate="mail.nowhere.test")
        text = p.config_text()
        path = p.write_config()
        out = run([POSTERN_BIN, "check", "--config", path])
        line = line_of(text, 'default_certificate = "mail.nowhere.test"')
        self.assert_error(out, path, r"tls\.default_certificate", (line, line), "mail.nowhere.test")

    # -- routes, backends and how each learns the client ---------------------------------------

    def identity_config(self, name: str, mx_backend: str) -> Postern:
        p = Postern(self.tmp / name, self.pki, certificates=["default", "a"])
        p.backend("dov", ["127.0.0.1:1", "127.0.0.1:2"], send_proxy="v2")
        p.backend("dov1", "127.0.0.1:3", send_proxy="v1")
        p.backend("pf", "127.0.0.1:4", xclient=True)
        p.backends.append({"name": "ex", "exec": ["/bin/cat"]})  # no address, no connect_timeout
        p.backend("plain", "127.0.0.1:5")
        p.listener("imaps", "imap", "dov", routes={"mail.a.test": "dov1", "*.b.test": "ex"},
                   accept_proxy=True, trusted_proxies=["10.0.0.0/8", "192.0.2.7"])
        p.listener("mx", "smtp", mx_backend, tls="starttls")   # require_tls = false: an MX
        p.listener("submission", "smtp", "plain", tls="starttls", submission=True)
        p.listener("smtps", "smtp", "pf")
        return p

    def test_lists_routes_backends_and_identity(self):
        p = self.identity_config("identity", "plain")
        out = run([POSTERN_BIN, "check", "--config", p.write_config()])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        text = out.stdout
        imaps = re.escape(p.listen_address("imaps"))
        self.assertRegex(text, rf"(?m)^  {imaps}  imap  implicit  -> dov\n"
                               r"      sni \*\.b\.test  -> ex\n"
                               r"      sni mail\.a\.test  -> dov1\n"
                               r"      PROXY header from 10\.0\.0\.0/8 192\.0\.2\.7(/32)?\n")
        self.assertRegex(text, r"(?m)^5 backend\(s\)$")
        for backend, where, identity in (("dov", "127.0.0.1:1, 127.0.0.1:2", "proxy-v2"),
                                         ("dov1", "127.0.0.1:3", "proxy-v1"),
                                         ("pf", "127.0.0.1:4", "xclient"),
                                         ("ex", "exec /bin/cat", "exec"),
                                         ("plain", "127.0.0.1:5", "none")):
            with self.subTest(backend=backend):
                self.assertRegex(text, rf"(?m)^  {re.escape(backend)}  {re.escape(where)}  "
                                       rf"client address: {identity}$")
        # the MX on "plain" is warned about; submission (TLS required) and smtps are not
        warnings = [l for l in text.splitlines() if "passes no client address" in l]
        self.assertEqual(len(warnings), 1, text)
        self.assertIn(f"listener {p.listen_address('mx')} ", warnings[0])
        self.assertIn("backend plain", warnings[0])
        self.assertIn('send_proxy = "v2" or xclient = true on backend[5]', warnings[0])
        self.assertRegex(text, r"OK with \d+ warning\(s\)")

    def test_mx_with_send_proxy_is_not_warned_about(self):
        p = self.identity_config("identity-pp", "dov")
        out = run([POSTERN_BIN, "check", "--config", p.write_config()])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"  {p.listen_address('mx')}  smtp  starttls  -> dov\n", out.stdout)
        self.assertNotIn("passes no client address", out.stdout)

    def test_errors_in_routes_proxy_and_backend_keys(self):
        cases = [
            # (what, listener/backend extra, key regex, words in the message)
            ("route to an unknown backend", {"routes": {"mail.a.test": "nope"}},
             r'listener\[3\]\.routes\."mail\.a\.test"', ["nope"]),
            ("malformed route name", {"routes": {"mail..a.test": "imap"}},
             r'listener\[3\]\.routes\."mail\.\.a\.test"', ["not a server name"]),
            ("two-label wildcard", {"routes": {"*.*.a.test": "imap"}},
             r'listener\[3\]\.routes\."\*\.\*\.a\.test"', ["not a server name"]),
            ("accept_proxy without trusted_proxies", {"accept_proxy": True},
             r"listener\[3\]\.accept_proxy", ["trusted_proxies"]),
            ("a bad trusted network", {"accept_proxy": True, "trusted_proxies": ["10.0.0.0/33"]},
             r"listener\[3\]\.trusted_proxies\[1\]", ["10.0.0.0/33"]),
        ]
        for what, extra, key_rx, words in cases:
            with self.subTest(what):
                p = self.config(re.sub(r"\W+", "-", what))
                p.listener("imap2", "imap", "imap", **extra)
                text = p.config_text()
                path = p.write_config()
                out = run([POSTERN_BIN, "check", "--config", path])
                self.assert_error(out, path, key_rx, block_range(text, "[[listener]]", 3), *words)

    def test_errors_in_backend_keys(self):
        cases = [
            ("exec and address", {"exec": ["/bin/cat"]}, r"backend\[3\]\.exec", ["exclude"]),
            ("unknown PROXY version", {"send_proxy": "v3"}, r"backend\[3\]\.send_proxy", ["v3"]),
            ("send_proxy and xclient", {"send_proxy": "v2", "xclient": True},
             r"backend\[3\]\.xclient", ["choose one"]),
        ]
        for what, extra, key_rx, words in cases:
            with self.subTest(what):
                p = self.config(re.sub(r"\W+", "-", what))
                p.backend("third", "127.0.0.1:3", **extra)
                p.listener("imap2", "imap", "third")
                text = p.config_text()
                path = p.write_config()
                out = run([POSTERN_BIN, "check", "--config", path])
                self.assert_error(out, path, key_rx, block_range(text, "[[backend]]", 3), *words)


if __name__ == "__main__":
    unittest.main()
