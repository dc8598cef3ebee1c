"""PROXY out (`send_proxy = "v1" | "v2"` on a backend): postern tells Dovecot and Postfix who the
client is, through their own PROXY listeners (Dovecot `haproxy = yes`, Postfix
`smtpd_upstream_proxy_protocol = haproxy`).

Every client connects from 127.0.0.2, so the address the backend reports can only be the
client's (postern itself connects from 127.0.0.1). Dovecot's login line shows the client (rip,
rport), the postern listener it reached (lip, lport) and, with v2 after TLS, the SNI
(local_name, from PP2_TYPE_AUTHORITY) and `secured` (PP2_TYPE_SSL); Postfix writes the client
into the delivered mail's Received: header. Postfix ignores TLVs, so the v2 SMTP backend is
reached through a RecordingRelay whose bytes show PP2_TYPE_SSL present exactly after TLS.
postern's own pre-TLS EHLO learner reaches the same Postfix listener with a v2 LOCAL header, and
with v1 a TCP4 line naming its own connection (Postfix 3.7 refuses "PROXY UNKNOWN").
"""

import ipaddress
import re
import struct
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, ImapSni, ImapStarttls, IntegrationCase,
                     LineClient, Pki, Pop3Sni, Pop3Starttls, Postern, Postfix, RecordingRelay,
                     SmtpSni, SmtpStarttls, message, plain_connect, unique, wait_until)

CLIENT = "127.0.0.2"  # the clients' source address; postern's own is 127.0.0.1
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PP2_TYPE_AUTHORITY, PP2_TYPE_SSL, PP2_SUBTYPE_SSL_VERSION = 0x02, 0x20, 0x21


def parse_v2(data: bytes):
    """A PROXY v2 TCP4 header at the start of data: (source "ip:port", {type: value}) of a PROXY
    command; None for anything else (LOCAL, v1, no header)."""
    if not data.startswith(V2_SIGNATURE) or len(data) < 16 or data[12] != 0x21 or data[13] != 0x11:
        return None
    end = 16 + struct.unpack_from("!H", data, 14)[0]
    src = f"{ipaddress.ip_address(data[16:20])}:{struct.unpack_from('!H', data, 24)[0]}"
    tlvs, p = {}, 28
    while p + 3 <= end:
        kind, length = data[p], struct.unpack_from("!H", data, p + 1)[0]
        tlvs[kind] = data[p + 3:p + 3 + length]
        p += 3 + length
    return src, tlvs


def ssl_version(ssl_tlv: bytes) -> str:
    """PP2_SUBTYPE_SSL_VERSION inside a PP2_TYPE_SSL value (client byte, verify, sub-TLVs)."""
    p = 5
    while p + 3 <= len(ssl_tlv):
        kind, length = ssl_tlv[p], struct.unpack_from("!H", ssl_tlv, p + 1)[0]
        if kind == PP2_SUBTYPE_SSL_VERSION:
            return ssl_tlv[p + 3:p + 3 + length].decode()
        p += 3 + length
    return ""


class ProxyOut(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot", haproxy=True)).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix", proxy=True)).start()
        cls.relay = cls.own(RecordingRelay(cls.tmp / "relay", cls.postfix.proxy_address, "relay-smtp")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.server["hostname"] = "mx.postern.test"
        p.backend("imap_v2", cls.dovecot.imap_haproxy_address, send_proxy="v2")
        p.backend("pop3_v2", cls.dovecot.pop3_haproxy_address, send_proxy="v2")
        p.backend("imap_v1", cls.dovecot.imap_haproxy_address, send_proxy="v1")
        p.backend("smtp_v2", cls.relay.address, send_proxy="v2")
        p.backend("smtp_v1", cls.postfix.proxy_address, send_proxy="v1")
        st = {"tls": "starttls"}
        p.listener("imaps", "imap", "imap_v2")
        p.listener("imap", "imap", "imap_v2", **st)
        p.listener("pop3s", "pop3", "pop3_v2")
        p.listener("pop3", "pop3", "pop3_v2", **st)
        p.listener("imaps_v1", "imap", "imap_v1")
        p.listener("smtps", "smtp", "smtp_v2")
        p.listener("submission", "smtp", "smtp_v2", submission=True, **st)
        p.listener("mx", "smtp", "smtp_v2", **st)       # port 25: require_tls = false
        p.listener("mx_v1", "smtp", "smtp_v1", **st)
        p.start()

    # -- helpers ---------------------------------------------------------------------------

    def assert_dovecot_saw(self, client_port: int, listener: str, sni=None, tls: bool = True) -> str:
        """Dovecot's login line names the client (127.0.0.2 and its port) and the postern
        listener it connected to; with v2 after TLS also the SNI and `secured`."""
        line = self.dovecot.wait_login(CLIENT, client_port)
        self.assertIn(f"lip={LOCALHOST}, lport={self.postern.port(listener)},", line)
        if sni:
            self.assertIn(f"local_name={sni},", line)
        else:
            self.assertNotIn("local_name=", line)
        if tls:
            self.assertRegex(line, r", secured, session=", line)
        else:
            self.assertNotRegex(line, r"\b(secured|TLS)\b", line)
        return line

    def assert_session(self, client_port: int, listener: str, backend: str, address: str) -> dict:
        fields = self.postern.session_end(client_port, listener, host=CLIENT)
        self.assertEqual(fields.get("backend"), backend, fields["_line"])
        self.assertEqual(fields.get("backend_addr"), address, fields["_line"])
        self.assertNotIn("via", fields, fields["_line"])
        return fields

    def assert_received_from_client(self, subject: str) -> str:
        """The delivered mail's only Received: header names 127.0.0.2 as the connecting client
        (`from HELO-NAME (RDNS [ADDRESS])`), not postern's address."""
        received = Postfix.received(self.postfix.wait_for_mail(subject))
        self.assertEqual(len(received), 1, received)
        m = re.match(r"Received: from \S+ \((?:\S+ )?\[([0-9a-f.:]+)\]\)", received[0])
        self.assertTrue(m, received[0])
        self.assertEqual(m.group(1), CLIENT, received[0])
        return received[0]

    def header_sent_for(self, client_port: int) -> dict:
        """The TLVs of the v2 header postern sent Postfix (through the relay) for this client."""
        self.relay.sync()
        for conn in self.relay.connections():
            parsed = parse_v2(bytes(conn.to_backend))
            if parsed and parsed[0] == f"{CLIENT}:{client_port}":
                return parsed[1]
        self.fail(f"no v2 PROXY header for {CLIENT}:{client_port} among {len(self.relay.connections())} connection(s)")

    def pre_tls_ehlo(self, listener: str) -> list[str]:
        """The EHLO keywords postern offers before TLS (what its learner got from Postfix)."""
        c = LineClient(plain_connect(self.postern.port(listener), timeout=5), 5)
        try:
            c.smtp_reply()
            return [l[4:].split()[0].upper() for l in c.smtp("EHLO client.c.test")[1:]]
        finally:
            c.close()

    def learned_ehlo(self, listener: str) -> list[str]:
        """The pre-TLS EHLO keywords once the learner has run (it starts with postern)."""
        def learned():
            keywords = self.pre_tls_ehlo(listener)
            return keywords if "SIZE" in keywords else None
        return wait_until(learned, 10, f"the backend's EHLO extensions offered on {listener}",
                          interval=0.2)

    # -- IMAP and POP3 into Dovecot ----------------------------------------------------------

    def test_imap_implicit_v2(self):
        m = ImapSni("mail.a.test", self.postern.port("imaps"), ssl_context=self.pki.context(),
                    source=CLIENT)
        port = m.sock.getsockname()[1]
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        self.assert_dovecot_saw(port, "imaps", "mail.a.test")
        self.assert_session(port, "imaps", "imap_v2", self.dovecot.imap_haproxy_address)

    def test_imap_starttls_v2(self):
        m = ImapStarttls("mail.b.test", self.postern.port("imap"), source=CLIENT)
        port = m.sock.getsockname()[1]
        m.starttls(ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        self.assert_dovecot_saw(port, "imap", "mail.b.test")
        self.assert_session(port, "imap", "imap_v2", self.dovecot.imap_haproxy_address)

    def test_pop3_implicit_v2(self):
        p = Pop3Sni("x.c.test", self.postern.port("pop3s"), context=self.pki.context(), source=CLIENT)
        port = p.sock.getsockname()[1]
        p.user(USER)
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        p.quit()
        self.assert_dovecot_saw(port, "pop3s", "x.c.test")
        self.assert_session(port, "pop3s", "pop3_v2", self.dovecot.pop3_haproxy_address)

    def test_pop3_starttls_v2(self):
        p = Pop3Starttls("mail.a.test", self.postern.port("pop3"), source=CLIENT)
        port = p.sock.getsockname()[1]
        self.assertTrue(p.stls(context=self.pki.context()).startswith(b"+OK"))
        p.user(USER)
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        p.quit()
        self.assert_dovecot_saw(port, "pop3", "mail.a.test")
        self.assert_session(port, "pop3", "pop3_v2", self.dovecot.pop3_haproxy_address)

    def test_imap_implicit_v1(self):
        # v1 carries the addresses only: no SNI, no TLS, so Dovecot does not count it secured
        m = ImapSni("mail.a.test", self.postern.port("imaps_v1"), ssl_context=self.pki.context(),
                    source=CLIENT)
        port = m.sock.getsockname()[1]
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        self.assert_dovecot_saw(port, "imaps_v1", None, tls=False)
        self.assert_session(port, "imaps_v1", "imap_v1", self.dovecot.imap_haproxy_address)

    # -- SMTP into Postfix -------------------------------------------------------------------

    def assert_tls_tlvs(self, client_port: int, sni: str, version: str) -> None:
        """The v2 header for this client carried its SNI and PP2_TYPE_SSL (PP2_CLIENT_SSL)."""
        tlvs = self.header_sent_for(client_port)
        self.assertEqual(tlvs.get(PP2_TYPE_AUTHORITY), sni.encode())
        self.assertIn(PP2_TYPE_SSL, tlvs)
        self.assertEqual(tlvs[PP2_TYPE_SSL][0] & 0x01, 0x01, "PP2_CLIENT_SSL")
        self.assertEqual(ssl_version(tlvs[PP2_TYPE_SSL]), version)

    def test_smtp_implicit_v2(self):
        subject = unique("pp-smtps")
        s = SmtpSni("mail.a.test", self.postern.port("smtps"), context=self.pki.context(), source=CLIENT)
        port, version = s.sock.getsockname()[1], s.sock.version()
        self.assertEqual(s.sendmail("sender@c.test", ["test@a.test"], message(subject)), {})
        s.quit()
        self.assert_received_from_client(subject)
        self.assert_session(port, "smtps", "smtp_v2", self.relay.address)
        self.assert_tls_tlvs(port, "mail.a.test", version)

    def test_submission_starttls_v2(self):
        subject = unique("pp-submission")
        s = SmtpStarttls("mail.b.test", self.postern.port("submission"), source=CLIENT)
        port = s.sock.getsockname()[1]
        s.ehlo()
        self.assertEqual(s.starttls(context=self.pki.context())[0], 220)
        version = s.sock.version()
        s.ehlo()
        self.assertEqual(s.sendmail("sender@c.test", ["test@a.test"], message(subject)), {})
        s.quit()
        self.assert_received_from_client(subject)
        fields = self.assert_session(port, "submission", "smtp_v2", self.relay.address)
        self.assertEqual(fields.get("tls"), version, fields["_line"])
        self.assert_tls_tlvs(port, "mail.b.test", version)

    def test_mx_plaintext_v2_and_v1(self):
        # a port-25 client that never starts TLS: a v2 header without SNI or PP2_TYPE_SSL, and v1
        for listener, backend, address in (("mx", "smtp_v2", self.relay.address),
                                           ("mx_v1", "smtp_v1", self.postfix.proxy_address)):
            with self.subTest(listener=listener):
                subject = unique(f"pp-{listener}")
                s = SmtpStarttls(None, self.postern.port(listener), source=CLIENT)
                port = s.sock.getsockname()[1]
                s.ehlo()
                self.assertTrue(s.has_extn("starttls"))
                self.assertEqual(s.sendmail("sender@c.test", ["test@a.test"], message(subject)), {})
                s.quit()
                self.assert_received_from_client(subject)
                fields = self.assert_session(port, listener, backend, address)
                self.assertEqual(fields.get("tls"), "-", fields["_line"])
                if listener == "mx":
                    tlvs = self.header_sent_for(port)
                    self.assertNotIn(PP2_TYPE_SSL, tlvs)
                    self.assertNotIn(PP2_TYPE_AUTHORITY, tlvs)

    def test_ehlo_learner_sends_v2_local(self):
        # Postfix's PROXY listener answers the learner only after a header it accepts; a v2
        # LOCAL header (no client) makes Postfix serve it as the connection's own address.
        # Without one, postern's pre-TLS EHLO would offer nothing but STARTTLS.
        for listener in ("submission", "mx"):
            with self.subTest(listener=listener):
                keywords = self.learned_ehlo(listener)
                for want in ("SIZE", "PIPELINING", "8BITMIME", "STARTTLS"):
                    self.assertIn(want, keywords)
        # the learner's own connection: a LOCAL header (no address, no TLV), then EHLO, answered
        self.relay.sync()
        local = V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00]) + b"EHLO "
        learners = [c for c in self.relay.connections() if bytes(c.to_backend).startswith(local)]
        self.assertTrue(learners, "no v2 LOCAL header then EHLO among the relay's connections")
        self.assertTrue(any(b"250-SIZE" in bytes(c.to_client) for c in learners))

    def test_ehlo_learner_sends_v1(self):
        keywords = self.learned_ehlo("mx_v1")
        for want in ("SIZE", "PIPELINING", "8BITMIME", "STARTTLS"):
            self.assertIn(want, keywords)

if __name__ == "__main__":
    unittest.main()
