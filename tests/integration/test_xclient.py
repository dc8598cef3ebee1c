"""The client's address through postern (fixture: xclient_case): a backend with `xclient = true`
learns it from the protocol's own command (IMAP ID, POP3 XCLIENT, SMTP XCLIENT) sent after its
greeting, on implicit and STARTTLS listeners; one without it sees postern's address (the control
that makes those assertions mean something); a backend that does not trust postern makes it
close the session with the setting to fix in its log. And the client can never claim an address
itself: its ID fields, POP3 and SMTP XCLIENT never reach a backend that would believe them
(each shown against the backend directly, where they are believed), and neither EHLO nor
CAPA nor the POP3 greeting offers XCLIENT to it.
"""

import unittest

from harness import unique
from xclient_case import (CLIENT_IP, POSTERN_IP, SPOOFED_IP, SPOOFED_PORT, XclientCase,
                          first_received)

SPOOFING_ID = (f'"x-originating-ip" "{SPOOFED_IP}" "x-originating-port" "{SPOOFED_PORT}" '
               '"name" "spoofer"')


class Xclient(XclientCase):
    # -- xclient = true: the backend learns the client's address ---------------------------
    # The listener without xclient in each list is the control: there the backend logs postern.

    def test_dovecot_imap_id_names_the_client(self):
        for listener, rip in (("imap_x", CLIENT_IP), ("imap_st_x", CLIENT_IP), ("imap", POSTERN_IP)):
            with self.subTest(listener=listener):
                mark = self.log_size(self.dovecot)
                c = self.client(listener)
                port = c.local_port
                self.imap_login(c, starttls=self.is_starttls(listener))
                line = self.dovecot_login("imap", mark)
                self.assertIn(f"rip={rip},", line)
                if rip == CLIENT_IP:
                    self.assertIn(f"rport={port},", line)
                    # x-connected-port: the port the client connected to
                    self.assertIn(f"lport={self.postern.port(listener)},", line)
                self.session(port, listener, end="client_quit")

    def test_dovecot_pop3_xclient_names_the_client(self):
        for listener, rip in (("pop3_x", CLIENT_IP), ("pop3_st_x", CLIENT_IP), ("pop3", POSTERN_IP)):
            with self.subTest(listener=listener):
                mark = self.log_size(self.dovecot)
                c = self.client(listener)
                port = c.local_port
                self.pop3_greeting(c, starttls=self.is_starttls(listener))
                self.pop3_login(c)
                line = self.dovecot_login("pop3", mark)
                self.assertIn(f"rip={rip},", line)
                if rip == CLIENT_IP:  # no lport: Dovecot 2.3 skips XCLIENT DESTADDR/DESTPORT
                    self.assertIn(f"rport={port},", line)
                self.session(port, listener, end="client_quit")

    def test_postfix_xclient_names_the_client_and_keeps_its_ehlo(self):
        for listener, addr, starttls in (("smtp_x", CLIENT_IP, False),
                                         ("submission_x", CLIENT_IP, True),
                                         ("smtp25_x", CLIENT_IP, False),  # stays in plaintext
                                         ("smtp", POSTERN_IP, False)):
            with self.subTest(listener=listener):
                ehlo = f"{unique('ehlo')}.c.test"
                c = self.client(listener)
                port = c.local_port
                self.smtp_hello(c, ehlo, starttls=starttls)
                received = first_received(self.smtp_send(c, unique(f"xc-{listener}")))
                self.assertTrue(received.startswith(f"from {ehlo} ("), received)
                self.assertIn(f"[{addr}]", received)
                other = POSTERN_IP if addr == CLIENT_IP else CLIENT_IP
                self.assertNotIn(f"[{other}]", received)
                self.session(port, listener, end="client_quit")

    # -- a backend that does not trust postern ---------------------------------------------

    def test_untrusting_backend_refuses_and_postern_says_what_to_set(self):
        cases = (("pop3_untrusting", "-ERR [SYS/TEMP] ", "login_trusted_networks"),
                 ("smtp_untrusting", "421 4.3.0 ", "smtpd_authorized_xclient_hosts"))
        for listener, reply, setting in cases:
            with self.subTest(listener=listener):
                c = self.client(listener)
                port = c.local_port
                first = c.readline()
                self.assertTrue(first.startswith(reply), c.transcript)
                self.assertEqual(c.read_to_eof(), "", c.transcript)
                fields = self.session(port, listener, end="forwarding_refused")
                self.assertIn(setting, fields.get("detail", ""), fields["_line"])
                self.assertRegex(fields["_line"], r"\bwarn")  # the admin must notice

    def test_check_names_xclient_backends(self):
        out = self.postern.check()
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        for backend, identity in (("imap_x", "xclient"), ("pop3_x", "xclient"),
                                  ("smtp_x", "xclient"), ("smtp", "none")):
            self.assertRegex(out.stdout, rf"(?m)^\s+{backend}\s+\S+\s+client address: {identity}$")

    # -- the client cannot claim an address ---------------------------------------------------
    # Each against a backend that believes postern's address. With xclient = true Dovecot takes
    # only the first ID (postern's), and Postfix authorizes XCLIENT by the address postern's
    # XCLIENT named, so there the listeners without xclient are the ones a leak would show on;
    # Dovecot takes every POP3 XCLIENT, the last one winning, on both.

    def test_imap_id_fields_from_the_client_never_reach_dovecot(self):
        for listener, rip in (("imap", POSTERN_IP), ("imap_x", CLIENT_IP)):
            with self.subTest(listener=listener):
                mark = self.log_size(self.dovecot)
                self.imap_login(self.client(listener), id_fields=SPOOFING_ID)
                line = self.dovecot_login("imap", mark)
                self.assertIn(f"rip={rip},", line)
                self.assertNotIn(f"rport={SPOOFED_PORT},", line)
                self.assertNotIn(SPOOFED_IP, self.log_since(self.dovecot, mark))

    def test_control_dovecot_believes_a_trusted_id(self):
        mark = self.log_size(self.dovecot)
        self.imap_login(self.client(port=self.dovecot.imap_port, source=POSTERN_IP),
                        id_fields=SPOOFING_ID)
        line = self.dovecot_login("imap", mark)
        self.assertIn(f"rip={SPOOFED_IP}, rport={SPOOFED_PORT},", line)

    def test_pop3_xclient_from_the_client_refused(self):
        for listener, rip in (("pop3", POSTERN_IP), ("pop3_x", CLIENT_IP)):
            with self.subTest(listener=listener):
                mark = self.log_size(self.dovecot)
                c = self.client(listener)
                self.pop3_greeting(c)
                c.send(f"XCLIENT ADDR={SPOOFED_IP} PORT={SPOOFED_PORT}")
                self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
                self.pop3_login(c)
                line = self.dovecot_login("pop3", mark)
                self.assertIn(f"rip={rip},", line)
                self.assertNotIn(SPOOFED_IP, self.log_since(self.dovecot, mark))

    def test_control_dovecot_believes_a_trusted_pop3_xclient(self):
        mark = self.log_size(self.dovecot)
        c = self.client(port=self.dovecot.pop3_port, source=POSTERN_IP)
        self.pop3_greeting(c)
        c.send(f"XCLIENT ADDR={SPOOFED_IP} PORT={SPOOFED_PORT}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        self.pop3_login(c)
        self.assertIn(f"rip={SPOOFED_IP}, rport={SPOOFED_PORT},", self.dovecot_login("pop3", mark))

    def test_smtp_xclient_from_the_client_refused(self):
        for listener, addr in (("smtp", POSTERN_IP), ("smtp_x", CLIENT_IP)):
            with self.subTest(listener=listener):
                c = self.client(listener)
                self.smtp_hello(c, "spoofer.c.test")
                reply = c.smtp(f"XCLIENT ADDR={SPOOFED_IP} PORT={SPOOFED_PORT} NAME=spoofed.example")
                self.assertTrue(reply[-1].startswith("550 5.7.0 "), c.transcript)
                received = first_received(self.smtp_send(c, unique(f"spoof-{listener}")))
                self.assertIn(f"[{addr}]", received)
                self.assertNotIn(SPOOFED_IP, received)
                self.assertNotIn("spoofed.example", received)

    def test_control_postfix_believes_a_trusted_xclient(self):
        c = self.client(port=self.postfix.port, source=POSTERN_IP)
        self.smtp_hello(c, "direct.c.test")
        reply = c.smtp(f"XCLIENT ADDR={SPOOFED_IP} PORT={SPOOFED_PORT} NAME=spoofed.example")
        self.assertTrue(reply[-1].startswith("220 "), c.transcript)
        self.assertTrue(c.smtp("EHLO direct.c.test")[-1].startswith("250 "), c.transcript)
        received = first_received(self.smtp_send(c, unique("spoof-direct")))
        self.assertIn(f"(spoofed.example [{SPOOFED_IP}])", received)

    def test_xclient_never_offered_to_the_client(self):
        # Dovecot 2.3 offers POP3 XCLIENT in its greeting only (its CAPA never lists it)
        for listener in ("pop3", "pop3_x", "pop3_st_x"):
            with self.subTest(listener=listener):
                c = self.client(listener)
                starttls = self.is_starttls(listener)
                self.assertNotIn("XCLIENT", self.pop3_greeting(c, starttls=starttls))
                capa = c.pop3_multiline("CAPA")
                self.assertTrue(capa[0].startswith("+OK"), c.transcript)
                self.assertNotIn("XCLIENT", "".join(capa).upper())
        for listener in ("smtp", "smtp_x", "submission_x"):
            with self.subTest(listener=listener):
                c = self.client(listener)
                ehlo = self.smtp_hello(c, "curious.c.test", starttls=self.is_starttls(listener))
                self.assertNotRegex(ehlo, r"(?im)^250[ -]X(CLIENT|FORWARD)\b")

    def test_control_backends_offer_xclient_to_postern(self):
        c = self.client(port=self.dovecot.pop3_port, source=POSTERN_IP)
        self.assertIn("[XCLIENT]", self.pop3_greeting(c))
        c = self.client(port=self.postfix.port, source=POSTERN_IP)
        self.assertRegex(self.smtp_hello(c, "direct.c.test"), r"(?m)^250[ -]XCLIENT\b")


if __name__ == "__main__":
    unittest.main()
