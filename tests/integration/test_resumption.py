"""TLS session resumption through postern: a ticket from a first connection resumes later ones,
whichever worker (SO_REUSEPORT event loop) accepts them, because every worker seals tickets
with the same keys; but only under a name the same certificate serves (RFC 6066 section 3).
Real Dovecot behind; Python's ssl module and openssl s_client as the clients."""

import re
import socket
import ssl
import unittest

from harness import LOCALHOST, Dovecot, IntegrationCase, Pki, Postern, run

# With 2 workers the kernel spreads connections by their 4-tuple: 16 reconnections all landing
# on the worker that issued the ticket happen with probability 2^-15, so per-worker keys fail.
RECONNECTS = 16


class Resumption(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.server["workers"] = 2
        p.backend("imap", cls.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.start()

    def connect(self, context: ssl.SSLContext, session=None,
                sni: str = "mail.a.test") -> tuple[ssl.SSLSocket, str]:
        raw = socket.create_connection((LOCALHOST, self.postern.port("imap")), timeout=10)
        tls = context.wrap_socket(raw, server_hostname=sni, session=session)
        # TLS 1.3 tickets arrive after the handshake: reading the greeting processes them.
        greeting = tls.makefile("rb").readline().decode()
        return tls, greeting

    def first_session(self, context: ssl.SSLContext):
        """The session (and ticket) of one full handshake; its connection is closed."""
        tls, greeting = self.connect(context)
        self.assertTrue(greeting.startswith("* OK"), greeting)
        self.assertFalse(tls.session_reused)
        session = tls.session
        tls.close()
        return session

    def resumed(self, context: ssl.SSLContext, session) -> int:
        """How many of RECONNECTS new connections offering `session` resumed it."""
        count = 0
        for _ in range(RECONNECTS):
            tls, greeting = self.connect(context, session)
            self.assertTrue(greeting.startswith("* OK"), greeting)
            count += tls.session_reused
            tls.close()
        return count

    def test_a_ticket_resumes_on_every_worker(self):
        context = self.pki.context()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        session = self.first_session(context)
        self.assertTrue(session.has_ticket, "postern sent no session ticket")
        self.assertEqual(self.resumed(context, session), RECONNECTS,
                         "connections that had to do a full handshake")

    def test_each_resumption_hands_out_a_fresh_ticket(self):
        # Clients that use a ticket once (RFC 8446 C.4) resume every time only if each
        # resumption brings a new ticket. Each connection here offers the previous one's.
        context = self.pki.context()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        session = self.first_session(context)
        seen = {session.id}
        for _ in range(RECONNECTS):
            tls, greeting = self.connect(context, session)
            self.assertTrue(greeting.startswith("* OK"), greeting)
            self.assertTrue(tls.session_reused, "a full handshake")
            session = tls.session
            tls.close()
            self.assertNotIn(session.id, seen, "the ticket offered came back, not a new one")
            seen.add(session.id)

    def test_tls12_session_resumes_too(self):
        context = self.pki.context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        session = self.first_session(context)
        self.assertEqual(self.resumed(context, session), RECONNECTS,
                         "connections that had to do a full handshake")

    # -- RFC 6066 section 3: a session is bound to the certificate it was made under ----------

    def cross_name(self, context: ssl.SSLContext) -> None:
        """A session for mail.a.test: offered again under mail.a.test it resumes; under
        mail.b.test it is a full handshake that shows (and verifies) b's certificate, and the
        session log names the certificate the client holds."""
        context.check_hostname = True
        session = self.first_session(context)
        tls, greeting = self.connect(context, session, "mail.a.test")
        self.assertTrue(greeting.startswith("* OK"), greeting)
        self.assertTrue(tls.session_reused, "the same name did not resume")
        port = tls.getsockname()[1]
        tls.close()
        self.assertEqual(self.postern.session_end(port, "imap")["cert"], "mail.a.test")

        tls, greeting = self.connect(context, session, "mail.b.test")  # verifies mail.b.test
        self.assertTrue(greeting.startswith("* OK"), greeting)
        self.assertFalse(tls.session_reused, "mail.a.test's session resumed under mail.b.test")
        self.assertEqual(self.pki.identify(tls.getpeercert(binary_form=True)), "b")
        port = tls.getsockname()[1]
        tls.close()
        self.assertEqual(self.postern.session_end(port, "imap")["cert"], "mail.b.test")

    def test_tls13_ticket_resumes_only_under_its_own_name(self):
        context = self.pki.context()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.cross_name(context)

    def test_tls12_ticket_resumes_only_under_its_own_name(self):
        context = self.pki.context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.cross_name(context)

    def test_s_client_session_for_another_name_is_a_full_handshake(self):
        sess = self.tmp / "a.sess"
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                def s_client(sni: str, *args) -> str:
                    out = run(["openssl", "s_client", version, "-connect",
                               f"{LOCALHOST}:{self.postern.port('imap')}", "-servername", sni,
                               "-CAfile", self.pki.ca, "-verify_return_error",
                               # reads until postern closes after LOGOUT: the TLS 1.3 ticket,
                               # which follows the handshake, is in by then
                               "-ign_eof", *args],
                              input=b"a LOGOUT\r\n", timeout=20)
                    return out.stdout + out.stderr
                text = s_client("mail.a.test", "-sess_out", sess)
                self.assertRegex(text, r"\bNew, TLSv1\.[23]", text)
                text = s_client("mail.a.test", "-sess_in", sess)
                self.assertRegex(text, r"\bReused, TLSv1\.[23]", text)
                text = s_client("mail.b.test", "-sess_in", sess)
                self.assertRegex(text, r"\bNew, TLSv1\.[23]", text)
                self.assertEqual(self.pki.identify_pem(text), "b", text)
                self.assertIn("Verify return code: 0 (ok)", text)


if __name__ == "__main__":
    unittest.main()
