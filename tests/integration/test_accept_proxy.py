"""PROXY in (`accept_proxy = true`, `trusted_proxies`): a TCP load balancer in front of postern
says who the client is.

client (127.0.0.2) -> HAProxy (TCP mode, send-proxy-v2) -> postern (accept_proxy; implicit and
STARTTLS listeners) -> Dovecot (send_proxy = "v2" to its haproxy listener): Dovecot logs the
original client, postern's session line `client=<the client> via=<the balancer>`. Headers
written by the test itself cover what HAProxy never sends: v2 LOCAL (a health check), v1, and
malformed or truncated headers; a source outside trusted_proxies is closed before any byte.
"""

import socket
import ssl
import struct
import time
import unittest

from harness import (LOCALHOST, PASSWORD, USER, Dovecot, Haproxy, ImapSni, ImapStarttls,
                     IntegrationCase, LineClient, Pki, Postern, plain_connect)

CLIENT = "127.0.0.2"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_LOCAL = V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)  # what health checks send


class AcceptProxy(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot", haproxy=True)).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("imap", cls.dovecot.imap_haproxy_address, send_proxy="v2")
        lb = {"accept_proxy": True, "trusted_proxies": [LOCALHOST]}
        p.listener("lb_imaps", "imap", "imap", handshake_timeout="1s", **lb)
        p.listener("lb_imap", "imap", "imap", tls="starttls", **lb)
        p.listener("untrusted", "imap", "imap", accept_proxy=True, trusted_proxies=["127.0.0.3"])
        cls.haproxy = Haproxy(cls.tmp / "haproxy")
        cls.haproxy.frontend("imaps", p.listen_address("lb_imaps"))
        cls.haproxy.frontend("imap", p.listen_address("lb_imap"))
        p.start()
        cls.own(cls.haproxy).start()

    # -- helpers ---------------------------------------------------------------------------

    def raw(self, listener: str, source=None) -> socket.socket:
        s = plain_connect(self.postern.port(listener), timeout=10, source=source)
        self.addCleanup(s.close)
        return s

    def read_to_eof(self, s: socket.socket) -> bytes:
        data = b""
        try:
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def tls_after_header(self, header: bytes, listener: str = "lb_imaps") -> int:
        """Sends the header, then TLS with SNI mail.a.test, an IMAP login and LOGOUT; returns
        the socket's own port."""
        s = plain_connect(self.postern.port(listener), timeout=10)
        port = s.getsockname()[1]
        s.sendall(header)
        c = LineClient(self.pki.context().wrap_socket(s, server_hostname="mail.a.test"))
        self.addCleanup(c.close)
        self.assertTrue(c.readline().startswith("* OK"), c.transcript)
        self.assertTrue(c.imap("a1", f"LOGIN {USER} {PASSWORD}")[-1].startswith("a1 OK"), c.transcript)
        self.assertTrue(c.imap("a2", "LOGOUT")[-1].startswith("a2 OK"), c.transcript)
        return port

    def assert_bad_header_closed(self, payload: bytes, why: str, close_write: bool = False) -> None:
        s = self.raw("lb_imaps")
        port = s.getsockname()[1]
        s.sendall(payload)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        self.assertEqual(self.read_to_eof(s), b"", "postern answered a bad PROXY header")
        fields = self.postern.session_end(port, "lb_imaps")
        self.assertEqual(fields.get("end"), "protocol_error", fields["_line"])
        self.assertEqual(fields.get("detail"), "bad PROXY header", fields["_line"])
        self.assertEqual(fields.get("tls"), "-", fields["_line"])
        self.assertNotIn("via", fields, fields["_line"])
        line = self.postern.wait_log(
            rf"^.*listener {self.postern.listen_address('lb_imaps')}: closed the connection from "
            rf"balancer {LOCALHOST}:{port}: bad PROXY header: .*$", since=self.postern.test_began)
        self.assertRegex(line.group(0), why)

    def assert_chain(self, client_port: int, listener: str, frontend: str, sni: str) -> None:
        """client -> haproxy -> postern -> dovecot: both postern and Dovecot name the client;
        Dovecot's local address is the one the client connected to (haproxy's frontend)."""
        fields = self.postern.session_end(client_port, listener, host=CLIENT)
        self.assertRegex(fields.get("via", ""), rf"^{LOCALHOST}:\d+$", fields["_line"])
        self.assertEqual(fields.get("sni"), sni, fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])
        line = self.dovecot.wait_login(CLIENT, client_port)
        self.assertIn(f"lip={LOCALHOST}, lport={self.haproxy.port(frontend)},", line)
        self.assertIn(f"local_name={sni},", line)
        self.assertIn(", secured,", line)
        # haproxy's own log names the same client
        self.haproxy.wait_log(rf"^{CLIENT}:{client_port} {frontend} ")

    # -- through HAProxy ---------------------------------------------------------------------

    def test_implicit_tls_through_haproxy(self):
        m = ImapSni("mail.a.test", self.haproxy.port("imaps"), ssl_context=self.pki.context(),
                    source=CLIENT)
        port = m.sock.getsockname()[1]
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        self.assert_chain(port, "lb_imaps", "imaps", "mail.a.test")

    def test_starttls_through_haproxy(self):
        m = ImapStarttls("mail.b.test", self.haproxy.port("imap"), source=CLIENT)
        port = m.sock.getsockname()[1]
        m.starttls(ssl_context=self.pki.context())
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        m.logout()
        self.assert_chain(port, "lb_imap", "imap", "mail.b.test")

    # -- headers written by hand ---------------------------------------------------------------

    def test_v2_local_header_is_served_as_the_balancer(self):
        port = self.tls_after_header(V2_LOCAL)
        fields = self.postern.session_end(port, "lb_imaps")
        self.assertEqual(fields.get("via"), f"{LOCALHOST}:{port}", fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])
        line = self.dovecot.wait_login(LOCALHOST, port)
        self.assertIn(f"lport={self.postern.port('lb_imaps')},", line)

    def test_v1_header_names_the_client(self):
        port = self.tls_after_header(b"PROXY TCP4 192.0.2.7 198.51.100.1 5555 993\r\n")
        fields = self.postern.session_end(5555, "lb_imaps", host="192.0.2.7")
        self.assertEqual(fields.get("via"), f"{LOCALHOST}:{port}", fields["_line"])
        line = self.dovecot.wait_login("192.0.2.7", 5555)
        self.assertIn("lip=198.51.100.1, lport=993,", line)

    def test_garbage_instead_of_a_header(self):
        self.assert_bad_header_closed(b"GET / HTTP/1.0\r\n\r\n", r"not a PROXY protocol header$")

    def test_v1_header_with_a_bad_address(self):
        self.assert_bad_header_closed(b"PROXY TCP4 999.0.0.1 127.0.0.1 5555 993\r\n",
                                      r"v1: bad source address$")

    def test_tls_hello_instead_of_a_header(self):
        # a client that skipped the balancer: its ClientHello is not a header
        s = self.raw("lb_imaps")
        port = s.getsockname()[1]
        with self.assertRaises((ssl.SSLError, OSError)):
            self.pki.context().wrap_socket(s, server_hostname="mail.a.test")
        fields = self.postern.session_end(port, "lb_imaps")
        self.assertEqual(fields.get("detail"), "bad PROXY header", fields["_line"])

    def test_truncated_header_then_closed(self):
        self.assert_bad_header_closed(V2_SIGNATURE[:8], r"closed before a complete header$",
                                      close_write=True)

    def test_truncated_header_then_silent_times_out(self):
        s = self.raw("lb_imaps")
        port = s.getsockname()[1]
        s.sendall(b"PROXY TCP4 127.0.0.2 ")
        started = time.monotonic()
        self.assertEqual(self.read_to_eof(s), b"")
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.5, "closed before handshake_timeout = 1s")
        self.assertLess(elapsed, 5.0, "handshake_timeout = 1s not applied to the PROXY header")
        fields = self.postern.session_end(port, "lb_imaps")
        self.assertEqual(fields.get("end"), "timeout", fields["_line"])
        self.assertIn("PROXY header", fields.get("detail", ""), fields["_line"])

    # -- trusted_proxies -------------------------------------------------------------------------

    def test_source_not_in_trusted_proxies_is_closed_before_any_byte(self):
        cases = [("untrusted", None),     # trusted_proxies = ["127.0.0.3"], we are 127.0.0.1
                 ("lb_imaps", CLIENT)]    # a client going around the balancer
        for listener, source in cases:
            with self.subTest(listener=listener, source=source):
                s = self.raw(listener, source)
                port = s.getsockname()[1]
                started = time.monotonic()
                self.assertEqual(self.read_to_eof(s), b"")
                self.assertLess(time.monotonic() - started, 0.9, "closed by a timeout, not at accept")
                self.postern.wait_log(
                    rf"listener {self.postern.listen_address(listener)}: refused a connection from "
                    rf"{source or LOCALHOST}:{port}: not in trusted_proxies$")


if __name__ == "__main__":
    unittest.main()
