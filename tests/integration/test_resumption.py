"""TLS session resumption through postern: a ticket from a first connection resumes later ones,
whichever worker (SO_REUSEPORT event loop) accepts them, because every worker seals tickets
with the same keys. Real Dovecot behind; Python's ssl module as the client."""

import socket
import ssl
import unittest

from harness import LOCALHOST, Dovecot, IntegrationCase, Pki, Postern

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

    def connect(self, context: ssl.SSLContext, session=None) -> tuple[ssl.SSLSocket, str]:
        raw = socket.create_connection((LOCALHOST, self.postern.port("imap")), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="mail.a.test", session=session)
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


if __name__ == "__main__":
    unittest.main()
