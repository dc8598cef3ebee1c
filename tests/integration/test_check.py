"""`postern check --config FILE`: exit 0 and a certificate table for a good config; exit 1 with
`FILE:LINE:COL: key: message` errors naming the offending key for broken ones."""

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


if __name__ == "__main__":
    unittest.main()
