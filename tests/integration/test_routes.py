"""Backends chosen per session: `routes` (the SNI picks the backend: an exact name, then "*." one
label up, else the listener's `backend`) and an address list with failover (`address = [dead,
live]`: a dead address is skipped, logged, and tried last for the next 30 s).

Routes: three Dovecot instances, each seeded with its own message, behind one implicit and one
STARTTLS IMAP listener; the mailbox a client reads proves which backend it reached, and the
session line names it. Failover: one Dovecot behind address lists whose first entries are
closed ports, one backend per test (the demotion is per backend and per process).
"""

import re
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, ImapSni, ImapStarttls, IntegrationCase,
                     LineClient, Pki, Postern, free_port, message, run, tls_connect, unique)

ROUTES = {"mail.a.test": "dov-a", "*.b.test": "dov-b"}


class Routes(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecots, cls.subjects = {}, {}
        for name in ("dov", "dov-a", "dov-b"):
            d = cls.dovecots[name] = cls.own(Dovecot(cls.tmp / name, instance=name)).start()
            cls.subjects[name] = unique(f"routes-{name}")
            d.seed(message(cls.subjects[name]))
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        for name, d in cls.dovecots.items():
            p.backend(name, d.imap_address)
        p.listener("imaps", "imap", "dov", routes=ROUTES)
        p.listener("imap", "imap", "dov", tls="starttls", routes=ROUTES)
        p.start()

    def mailbox_of(self, m) -> str:
        """Logs in on an imaplib connection and names the Dovecot instance whose INBOX it is
        (each holds only its own seeded message)."""
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX", readonly=True)[0], "OK")
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        subjects = {part[1].decode().strip() for part in data if isinstance(part, tuple)}
        m.logout()
        owners = [name for name, subject in self.subjects.items() if {f"Subject: {subject}"} == subjects]
        self.assertEqual(len(owners), 1, f"INBOX subjects {subjects} match no single backend")
        return owners[0]

    def assert_routed(self, sni, want: str, listener: str = "imaps") -> None:
        ctx = self.pki.context(verify=False)  # x.b.test etc. get the default certificate
        if listener == "imaps":
            m = ImapSni(sni, self.postern.port(listener), ssl_context=ctx)
        else:
            m = ImapStarttls(sni, self.postern.port(listener))
            m.starttls(ssl_context=ctx)
        port = m.sock.getsockname()[1]
        self.assertEqual(self.mailbox_of(m), want, f"SNI {sni!r} on {listener}")
        fields = self.postern.session_end(port, listener)
        self.assertEqual(fields.get("backend"), want, fields["_line"])
        self.assertEqual(fields.get("backend_addr"), self.dovecots[want].imap_address, fields["_line"])
        self.assertEqual(fields.get("sni"), sni or "-", fields["_line"])

    def test_exact_name_routes(self):
        # the exact name only: its parent, a sibling, an unknown name and no SNI get the default
        for sni, want in (("mail.a.test", "dov-a"), ("a.test", "dov"), ("imap.a.test", "dov"),
                          ("mail.unknown.test", "dov"), (None, "dov")):
            with self.subTest(sni=sni):
                self.assert_routed(sni, want)

    def test_exact_name_any_case_and_trailing_dot(self):
        # SNI names compare case-insensitively and a trailing dot names the same host; openssl
        # sends the name byte for byte (python would normalise it)
        mark = self.postern.log_size()
        out = run(["openssl", "s_client", "-connect", f"{LOCALHOST}:{self.postern.port('imaps')}",
                   "-servername", "MAIL.A.TEST.", "-crlf", "-ign_eof"], input=b"a1 LOGOUT\n", timeout=20)
        self.assertRegex(out.stdout, r"(?m)^a1 OK", out.stderr)
        addr = re.escape(self.postern.listen_address("imaps"))
        line = self.postern.wait_log(rf"^.*\bsession end\b.*\blistener={addr}\s.*$", since=mark).group(0)
        self.assertIn(" sni=MAIL.A.TEST. ", line)
        self.assertIn(" backend=dov-a ", line)
        self.assertIn(f" backend_addr={self.dovecots['dov-a'].imap_address} ", line)

    def test_wildcard_routes_one_label(self):
        # "*.b.test" covers exactly one label: not two, not the bare parent
        for sni, want in (("x.b.test", "dov-b"), ("mail.b.test", "dov-b"), ("y.x.b.test", "dov"),
                          ("b.test", "dov")):
            with self.subTest(sni=sni):
                self.assert_routed(sni, want)

    def test_starttls_listener_routes_after_the_handshake(self):
        for sni, want in (("mail.a.test", "dov-a"), ("x.b.test", "dov-b"), (None, "dov")):
            with self.subTest(sni=sni):
                self.assert_routed(sni, want, "imap")


class Failover(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        # nothing listens there (the ports were free a moment ago): connect() is refused
        cls.dead = [f"{LOCALHOST}:{port}" for port in (free_port(), free_port(), free_port())]
        live = cls.dovecot.imap_address
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        # one backend per test: a dead address stays demoted for 30 s in the whole process
        p.backend("fo_first", [cls.dead[0], live])
        p.backend("fo_again", [cls.dead[1], live])
        p.backend("fo_none", [cls.dead[2], cls.dead[0]])
        for name in ("fo_first", "fo_again", "fo_none"):
            p.listener(name, "imap", name)
        p.start()

    def imap_session(self, listener: str) -> dict:
        """A verified IMAP login through the listener; the session line's fields."""
        m = ImapSni("mail.a.test", self.postern.port(listener), ssl_context=self.pki.context())
        port = m.sock.getsockname()[1]
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()
        return self.postern.session_end(port, listener)

    def failure_line(self, backend: str, dead: str) -> str:
        return (rf"^.*\bbackend {re.escape(backend)}: {re.escape(dead)} failed \(connect: [^)]+\); "
                rf"trying {re.escape(self.dovecot.imap_address)}$")

    def test_dead_first_address_is_skipped_and_logged(self):
        mark = self.postern.log_size()
        fields = self.imap_session("fo_first")
        self.assertEqual(fields.get("backend"), "fo_first", fields["_line"])
        self.assertEqual(fields.get("backend_addr"), self.dovecot.imap_address, fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])
        line = self.postern.wait_log(self.failure_line("fo_first", self.dead[0]), since=mark).group(0)
        self.assertIn("refused", line.lower())

    def test_second_session_skips_the_dead_address(self):
        mark = self.postern.log_size()
        self.imap_session("fo_again")
        self.postern.wait_log(self.failure_line("fo_again", self.dead[1]), since=mark)
        # within kDemotion (30 s) the dead address goes last: the live one serves at once, and
        # nothing is logged about the dead one (its warning would precede the session line)
        mark = self.postern.log_size()
        fields = self.imap_session("fo_again")
        self.assertEqual(fields.get("backend_addr"), self.dovecot.imap_address, fields["_line"])
        with open(self.postern.log, "rb") as f:
            f.seek(mark)
            since = f.read().decode(errors="replace")
        self.assertNotIn("backend fo_again:", since)
        self.assertNotIn(self.dead[1], since)

    def test_all_addresses_failing_answer_in_protocol(self):
        c = LineClient(tls_connect(self.postern.port("fo_none"), "mail.a.test"))
        port = c.local_port
        text = c.read_to_eof()
        c.close()
        self.assertRegex(text, r"^\* BYE ")
        self.assertEqual(len(text.splitlines()), 1, text)
        fields = self.postern.session_end(port, "fo_none")
        self.assertEqual(fields.get("end"), "backend_unreachable", fields["_line"])
        self.assertNotIn("backend_addr", fields, fields["_line"])
        detail = fields.get("detail", "")
        for dead in (self.dead[2], self.dead[0]):
            self.assertRegex(detail, re.escape(dead) + r": connect: ", fields["_line"])
        self.postern.wait_log(rf"backend fo_none: {re.escape(self.dead[2])} failed \(.*\); "
                              rf"trying {re.escape(self.dead[0])}$")


if __name__ == "__main__":
    unittest.main()
