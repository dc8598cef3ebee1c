"""STARTTLS dialogues through postern against real Dovecot and Postfix (fixture: starttls_case).

Before TLS postern speaks for itself with no backend connected (a RecordingRelay between postern
and the backend proves it): greeting, capabilities, refusal of credentials, the EHLO extensions it
learned from the backend. After the handshake the backend's own dialogue is relayed with
STARTTLS/STLS/LOGINDISABLED filtered out, and a second STARTTLS is refused.
"""

import re
import socket
import unittest

from harness import LOCALHOST, PASSWORD, USER, LineClient, message, unique
from starttls_case import BACKEND_SMTP_NAME, HOSTNAME, LIMITS_HOSTNAME, StartTlsCase, b64_plain


class StartTlsDialogue(StartTlsCase):
    # -- before TLS: postern's own dialogue, no backend ---------------------------------

    def test_imap_pre_tls_dialogue(self):
        mark = self.relays["imap"].mark()
        c = self.plain("imap_rec")
        port = c.local_port
        greeting = c.readline()
        self.assertRegex(greeting, r"^\* OK \[CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\] ")
        self.assertIn(HOSTNAME, greeting)
        lines = c.imap("a1", "CAPABILITY")
        caps = [l for l in lines if l.startswith("* CAPABILITY ")]
        self.assertEqual(len(caps), 1, lines)
        self.assertEqual(set(caps[0].split()[2:]), {"IMAP4rev1", "STARTTLS", "LOGINDISABLED"}, caps)
        self.assertTrue(lines[-1].startswith("a1 OK"), lines)
        self.assertTrue(c.imap("a2", "NOOP")[-1].startswith("a2 OK"), c.transcript)
        for tag, command in (("a3", f"LOGIN {USER} {PASSWORD}"), ("a4", "AUTHENTICATE PLAIN"),
                             ("a5", f"AUTHENTICATE PLAIN {b64_plain(USER, PASSWORD)}")):
            lines = c.imap(tag, command)
            self.assertEqual(len(lines), 1, lines)  # no "+ " continuation: nothing is read
            self.assertTrue(lines[0].startswith(f"{tag} NO [PRIVACYREQUIRED]"), lines)
        for tag, command in (("a6", "SELECT INBOX"), ("a7", "XYZZY"), ("a8", "ID NIL")):
            lines = c.imap(tag, command)
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].startswith(f"{tag} BAD"), lines)
        lines = c.imap("a9", "LOGOUT")
        self.assertTrue(lines[0].startswith("* BYE"), lines)
        self.assertTrue(lines[-1].startswith("a9 OK"), lines)
        self.assertEqual(c.read_to_eof(), "", "connection closed after LOGOUT")
        c.close()
        self.session(port, "imap_rec", protocol="imap", tls="-", sni="-", end="client_quit")
        self.assert_no_backend_connection("imap", mark)

    def test_pop3_pre_tls_dialogue(self):
        mark = self.relays["pop3"].mark()
        c = self.plain("pop3_rec")
        port = c.local_port
        greeting = c.readline()
        self.assertRegex(greeting, r"^\+OK ")
        self.assertIn(HOSTNAME, greeting)
        self.assertNotRegex(greeting, r"<[^>]+@[^>]+>", "no APOP timestamp: postern cannot do APOP")
        capa = c.pop3_multiline("CAPA")
        self.assertTrue(capa[0].startswith("+OK"), capa)
        names = [l.split()[0].upper() for l in capa[1:-1]]
        self.assertIn("STLS", names)
        self.assertNotIn("USER", names)  # require_tls: no plaintext login offered
        self.assertNotIn("SASL", names)
        for command in (f"USER {USER}", f"PASS {PASSWORD}", "APOP test 0123456789abcdef0123456789abcdef",
                        "AUTH PLAIN", f"AUTH PLAIN {b64_plain(USER, PASSWORD)}"):
            c.send(command)
            reply = c.readline()
            self.assertTrue(reply.startswith("-ERR [AUTH]"), (command, reply))
        for command in ("STAT", "LIST", "RETR 1", "XYZZY"):
            c.send(command)
            reply = c.readline()
            self.assertTrue(reply.startswith("-ERR"), (command, reply))
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        self.assertEqual(c.read_to_eof(), "", "connection closed after QUIT")
        c.close()
        self.session(port, "pop3_rec", protocol="pop3", tls="-", end="client_quit")
        self.assert_no_backend_connection("pop3", mark)

    def test_smtp_submission_pre_tls_dialogue(self):
        mark = self.relays["submission"].mark()
        c = self.plain("submission_rec")
        port = c.local_port
        greeting = c.smtp_reply()
        self.assertEqual(len(greeting), 1, greeting)
        self.assertRegex(greeting[0], r"^220 " + re.escape(HOSTNAME) + r" ")
        ehlo = c.smtp("EHLO client.c.test")
        self.assertTrue(all(l.startswith("250") for l in ehlo), ehlo)
        self.assertRegex(ehlo[0], r"^250-" + re.escape(HOSTNAME))
        keywords = [l[4:].split()[0].upper() for l in ehlo[1:]]
        self.assertIn("STARTTLS", keywords)
        self.assertNotIn("AUTH", keywords, "AUTH advertised before TLS on a require_tls listener")
        self.assertFalse(any(k.startswith("AUTH=") for k in keywords), keywords)
        self.assertRegex(c.smtp("HELO client.c.test")[0], r"^250 ")
        for command, code in (("NOOP", "250"), ("RSET", "250"), ("HELP", "214")):
            reply = c.smtp(command)
            self.assertTrue(reply[-1].startswith(code), (command, reply))
        for command in ("MAIL FROM:<sender@c.test>", f"AUTH PLAIN {b64_plain(USER, PASSWORD)}",
                        "AUTH LOGIN"):
            reply = c.smtp(command)
            self.assertEqual(reply, ["530 5.7.0 Must issue a STARTTLS command first\r\n"], command)
        reply = c.smtp("QUIT")
        self.assertTrue(reply[-1].startswith("221"), reply)
        self.assertEqual(c.read_to_eof(), "", "connection closed after QUIT")
        c.close()
        self.session(port, "submission_rec", protocol="smtp", tls="-", end="client_quit")
        self.assert_no_backend_connection("submission", mark)

    def test_smtp_ehlo_offers_backend_extensions(self):
        # the backend itself offers AUTH and STARTTLS (so the assertions below can fail)
        direct = LineClient(socket.create_connection((LOCALHOST, self.postfix.tls_port), 5))
        direct.smtp_reply()
        backend = [l[4:].split()[0].upper() for l in direct.smtp("EHLO client.c.test")[1:]]
        direct.smtp("QUIT")
        direct.close()
        for want in ("AUTH", "STARTTLS", "SIZE", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
            self.assertIn(want, backend)
        for listener in ("submission", "smtp"):
            with self.subTest(listener=listener):
                ehlo = self.pre_tls_ehlo(listener).splitlines()
                keywords = [l[4:].split()[0].upper() for l in ehlo[1:]]
                for want in ("STARTTLS", "SIZE", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
                    self.assertIn(want, keywords, ehlo)
                self.assertEqual(keywords.count("STARTTLS"), 1, ehlo)
                self.assertTrue(set(keywords) <= set(backend) | {"STARTTLS"},
                                f"extensions the backend does not offer: {set(keywords) - set(backend)}")
                if listener == "submission":
                    self.assertNotIn("AUTH", keywords, ehlo)

    def test_greeting_names_listener_hostname(self):
        for proto, listener_host in (("imap", LIMITS_HOSTNAME), ("pop3", LIMITS_HOSTNAME),
                                     ("smtp", LIMITS_HOSTNAME)):
            with self.subTest(protocol=proto):
                c = self.plain(f"{proto}_lim")
                greeting = c.readline()
                self.assertIn(listener_host, greeting)
                self.assertNotIn(HOSTNAME, greeting)
                c.close()

    # -- after TLS: the backend's dialogue, filtered; no second STARTTLS -----------------

    def test_imap_after_starttls_backend_capabilities_and_no_second_starttls(self):
        # the backend on its own does advertise STARTTLS
        direct = LineClient(socket.create_connection((LOCALHOST, self.dovecot.imap_port), 5))
        self.assertIn("STARTTLS", direct.readline())
        direct.close()
        c = self.plain("imap")
        c.readline()
        self.assertTrue(c.imap("a1", "STARTTLS")[-1].startswith("a1 OK"), c.transcript)
        c.starttls("mail.b.test")
        self.assertEqual(self.served(c.sock), "b")
        lines = c.imap("a2", "CAPABILITY")
        self.assertFalse(any(l.startswith("* OK") for l in lines), f"a greeting after STARTTLS: {lines}")
        caps = [l for l in lines if l.startswith("* CAPABILITY ")]
        self.assertEqual(len(caps), 1, lines)
        self.assertIn("AUTH=PLAIN", caps[0])  # Dovecot's list
        self.assertNotIn("STARTTLS", caps[0])
        self.assertNotIn("LOGINDISABLED", caps[0])
        lines = c.imap("a3", "STARTTLS")
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("a3 BAD"), lines)
        self.assertTrue(c.imap("a4", "NOOP")[-1].startswith("a4 OK"), c.transcript)  # same TLS session
        self.assertTrue(c.imap("a5", f"LOGIN {USER} {PASSWORD}")[-1].startswith("a5 OK"), c.transcript)
        self.assertTrue(c.imap("a7", "STARTTLS")[-1].startswith("a7 BAD"), c.transcript)
        self.assertTrue(c.imap("a8", "LOGOUT")[-1].startswith("a8 OK"), c.transcript)
        c.close()

    def test_pop3_after_stls_backend_capa_and_no_second_stls(self):
        c = self.plain("pop3")
        c.readline()
        c.send("STLS")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.starttls("mail.a.test")
        self.assertEqual(self.served(c.sock), "a")
        capa = c.pop3_multiline("CAPA")
        self.assertTrue(capa[0].startswith("+OK"), capa)
        self.assertFalse(any(l.startswith(("+OK", "-ERR")) for l in capa[1:]),
                         f"a greeting after STLS: {capa}")
        self.assertIn("UIDL\r\n", capa)
        self.assertFalse(any(l.upper().startswith("STLS") for l in capa), capa)
        c.send("STLS")
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
        c.send(f"USER {USER}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send(f"PASS {PASSWORD}")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.send("STLS")
        self.assertTrue(c.readline().startswith("-ERR"), c.transcript)
        c.send("QUIT")
        self.assertTrue(c.readline().startswith("+OK"), c.transcript)
        c.close()

    def test_smtp_after_starttls_backend_ehlo_and_no_second_starttls(self):
        mark = self.relays["submission"].mark()
        c = self.plain("submission_rec")
        c.smtp_reply()
        c.smtp("EHLO client.c.test")
        self.assertEqual(c.smtp("STARTTLS"), ["220 2.0.0 Ready to start TLS\r\n"])
        c.starttls("x.c.test")
        self.assertEqual(self.served(c.sock), "c")
        ehlo = c.smtp("EHLO client.c.test")  # the first reply after TLS: no second banner
        self.assertRegex(ehlo[0], r"^250-" + re.escape(BACKEND_SMTP_NAME), ehlo)
        keywords = [l[4:].split()[0].upper() for l in ehlo[1:]]
        self.assertIn("AUTH", keywords)
        self.assertNotIn("STARTTLS", keywords)
        reply = c.smtp("STARTTLS")
        self.assertRegex(reply[-1], r"^5\d\d ", reply)
        self.assertTrue(c.smtp("NOOP")[-1].startswith("250"), c.transcript)
        self.assertTrue(c.smtp(f"AUTH PLAIN {b64_plain(USER, PASSWORD)}")[-1].startswith("235"), c.transcript)
        # once authenticated (postern relays as-is from here on) the same rules hold
        with self.subTest("EHLO after AUTH"):
            ehlo = c.smtp("EHLO client.c.test")
            self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
        with self.subTest("STARTTLS after AUTH"):
            reply = c.smtp("STARTTLS")
            self.assertRegex(reply[-1], r"^5\d\d ", f"STARTTLS after AUTH: {reply}")
        if not reply[-1].startswith("220"):
            self.assertTrue(c.smtp("QUIT")[-1].startswith("221"), c.transcript)
        c.close()
        with self.subTest("backend asked for STARTTLS"):
            sent = b"".join(bytes(x.to_backend) for x in self.backend_sessions("submission", mark))
            self.assertNotIn(b"STARTTLS", sent.upper(), "the backend was asked for STARTTLS")

    def test_smtp_port25_after_starttls_filtered_across_transactions(self):
        subject = unique("st-25-tls")
        mark = self.relays["smtp"].mark()
        c = self.plain("smtp_rec")
        port = c.local_port
        c.smtp_reply()
        self.assertEqual(c.smtp("STARTTLS"), ["220 2.0.0 Ready to start TLS\r\n"])  # EHLO is optional
        c.starttls("mail.a.test")
        ehlo = c.smtp("EHLO client.c.test")
        self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
        self.assertRegex(c.smtp("MAIL FROM:<sender@c.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("RCPT TO:<test@a.test>")[-1], r"^250 ")
        self.assertRegex(c.smtp("DATA")[-1], r"^354 ")
        c.sock.sendall(message(subject) + b".\r\n")
        self.assertRegex(c.smtp_reply()[-1], r"^250 ")
        with self.subTest("EHLO after a transaction"):
            ehlo = c.smtp("EHLO client.c.test")
            self.assertTrue(ehlo[-1].startswith("250 "), ehlo)
            self.assertFalse(any("STARTTLS" in l.upper() for l in ehlo), ehlo)
        reply = c.smtp("STARTTLS")
        with self.subTest("STARTTLS after a transaction"):
            self.assertRegex(reply[-1], r"^5\d\d ", reply)
        if not reply[-1].startswith("220"):
            self.assertRegex(c.smtp("QUIT")[-1], r"^221 ")
        c.close()
        self.postfix.wait_for_mail(subject)
        self.session(port, "smtp_rec", sni="mail.a.test", cert="mail.a.test")
        sent = b"".join(bytes(x.to_backend) for x in self.backend_sessions("smtp", mark))
        self.assertNotIn(b"STARTTLS", sent.upper(), "the backend was asked for STARTTLS")


if __name__ == "__main__":
    unittest.main()
