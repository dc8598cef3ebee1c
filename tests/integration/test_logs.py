"""server.log_format and the journal (issue 14, point 5).

log_format = "json": every line postern writes to stderr is one JSON object, and the session
end line's fields are its own keys (numbers as numbers). Under the journal (JOURNAL_STREAM names
postern's stderr), text lines start with the syslog priority and carry no timestamp. An unknown
format is refused, naming the key.
"""

import json
import os
import re

from harness import (LOCALHOST, PASSWORD, POSTERN_BIN, USER, Dovecot, ImapSni, IntegrationCase,
                     Pki, Postern, free_port, run, tls_connect)

ISO_UTC_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


class Logs(IntegrationCase):

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.nowhere = f"{LOCALHOST}:{free_port()}"  # nothing listens there

    def postern(self, name: str, **server) -> Postern:
        """A postern with an IMAPS listener to Dovecot ("imap") and one to nowhere ("dead")."""
        p = self.own(Postern(self.tmp / name, self.pki))
        p.server.update(server)
        p.backend("imap", self.dovecot.imap_address)
        p.backend("nowhere", self.nowhere)
        p.listener("imap", "imap", "imap")
        p.listener("dead", "imap", "nowhere")
        return p

    def login(self, p: Postern) -> int:
        """One IMAPS login and logout through p; returns the client's source port."""
        m = ImapSni("mail.a.test", p.port("imap"), ssl_context=self.pki.context())
        port = m.sock.getsockname()[1]
        m.login(USER, PASSWORD)
        m.logout()
        return port

    def unreachable(self, p: Postern) -> None:
        """A session whose backend refuses: logged at warning."""
        with tls_connect(p.port("dead"), "mail.a.test", context=self.pki.context()) as s:
            s.settimeout(10)
            while s.recv(4096):
                pass

    def test_json_lines(self):
        p = self.postern("postern-json", log_format="json").start()
        port = self.login(p)
        self.unreachable(p)
        p.wait_log(r'"message":"session end".*"end":"backend_unreachable"')
        p.wait_log(r'"message":"session end".*"client":"%s:%d"' % (LOCALHOST, port))
        self.assertEqual(p.stop(), 0)

        lines = p.log_text().splitlines()
        self.assertGreater(len(lines), 2)
        objects = []
        for line in lines:
            try:
                objects.append(json.loads(line))
            except ValueError as e:
                self.fail(f"not a JSON line ({e}): {line!r}")
        for o in objects:
            self.assertIsInstance(o, dict, o)
            self.assertRegex(o.get("time", ""), ISO_UTC_MS, o)
            self.assertIn(o.get("level"), ("trace", "debug", "info", "warning", "error", "critical"), o)
            self.assertIsInstance(o.get("message"), str, o)

        ends = [o for o in objects if o["message"] == "session end"]
        mine = [o for o in ends if o.get("client") == f"{LOCALHOST}:{port}"]
        self.assertEqual(len(mine), 1, ends)
        s = mine[0]
        self.assertEqual(s["level"], "info")
        self.assertEqual(s["listener"], p.listen_address("imap"))
        self.assertEqual(s["protocol"], "imap")
        self.assertEqual(s["sni"], "mail.a.test")
        self.assertEqual(s["cert"], "mail.a.test")
        self.assertRegex(s["tls"], r"^TLSv1\.[23]$")
        self.assertEqual(s["backend"], "imap")
        self.assertEqual(s["backend_addr"], self.dovecot.imap_address)
        self.assertEqual(s["end"], "client_quit")
        for key in ("bytes_in", "bytes_out", "duration_ms"):
            self.assertIs(type(s[key]), int, f"{key} in {s}")
        self.assertGreater(s["bytes_in"], 10, s)
        self.assertGreater(s["bytes_out"], 10, s)
        self.assertNotIn("detail", s)

        dead = [o for o in ends if o.get("end") == "backend_unreachable"]
        self.assertEqual(len(dead), 1, ends)
        self.assertEqual(dead[0]["level"], "warning")
        self.assertEqual(dead[0]["listener"], p.listen_address("dead"))
        self.assertIn("refused", dead[0]["detail"])  # the quoted text field, without its quotes

    def test_journal_text(self):
        p = self.postern("postern-journal")
        p.log.touch()  # the harness appends postern's stdout and stderr to this file
        st = os.stat(p.log)
        p.env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        p.start()
        port = self.login(p)
        self.unreachable(p)
        p.wait_log(r"session end .*end=backend_unreachable")
        p.wait_log(r"session end client=%s:%d " % (re.escape(LOCALHOST), port))
        self.assertEqual(p.stop(), 0)

        lines = p.log_text().splitlines()
        self.assertGreater(len(lines), 2)
        for line in lines:
            # the priority, then at once the level: no timestamp (the journal keeps its own)
            self.assertRegex(line, r"^<[2-7]>(trace|debug|info|warning|error|critical) ", line)
            level = line.split(" ", 1)[0]
            expected = {"info": "<6>", "warning": "<4>", "error": "<3>"}.get(level[3:])
            if expected:
                self.assertEqual(line[:3], expected, line)
        self.assertTrue(any(re.match(r"^<6>info session end client=%s:%d .*end=client_quit$"
                                     % (re.escape(LOCALHOST), port), line) for line in lines), lines)
        self.assertTrue(any(re.match(r"^<4>warning session end .*end=backend_unreachable", line)
                            for line in lines), lines)

    def test_unknown_format_refused(self):
        p = self.postern("postern-xml", log_format="xml")
        config = p.write_config()
        for command in ("check", "run"):
            out = run([POSTERN_BIN, command, "--config", config], timeout=30)
            self.assertEqual(out.returncode, 1, out)
            self.assertRegex(out.stderr + out.stdout,
                             r"postern\.toml:\d+:\d+: server\.log_format: unknown log_format \"xml\"",
                             out)
