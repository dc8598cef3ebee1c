"""A client that closes right after the TLS handshake (scanners, certificate monitors, an
attacker cycling handshakes) costs no backend connection: the session ends as
`end=handshake_only` and the backend (Dovecot behind a recording relay) sees nothing, on an
implicit-TLS listener and after STARTTLS. A client that sends a command before it closes still
reaches the backend (the control)."""

import socket
import ssl
import unittest

from harness import (LOCALHOST, Dovecot, IntegrationCase, LineClient, Pki, Postern,
                     RecordingRelay, no_verify)

CLIENTS = 10


def handshake_and_close(sock: socket.socket, sni: str, before_close: bytes = b"") -> None:
    """TLS 1.3 handshake; the client's Finished and its close_notify leave in one segment
    (TCP_CORK), so the close is there when postern completes the handshake, as it is for a
    client on a real network that closes at once."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    tls = no_verify().wrap_socket(sock, server_hostname=sni, do_handshake_on_connect=False)
    tls.settimeout(10)
    tls.do_handshake()
    if before_close:
        tls.sendall(before_close)
    try:
        tls.unwrap()  # close_notify; the cork's 200 ms timer sends it with the Finished
    except (OSError, ssl.SSLError):
        pass
    tls.close()


class HandshakeOnly(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.relay = cls.own(RecordingRelay(cls.tmp / "relay", cls.dovecot.imap_address)).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("imap", cls.relay.address)
        p.listener("imaps", "imap", "imap")
        p.listener("imap", "imap", "imap", tls="starttls")
        p.start()

    def connect(self, listener: str) -> socket.socket:
        return socket.create_connection((LOCALHOST, self.postern.port(listener)), 5)

    def starttls(self, listener: str) -> socket.socket:
        c = LineClient(self.connect(listener), 5)
        c.readline()
        self.assertRegex(c.imap("s", "STARTTLS")[-1], r"^s OK")
        return c.sock

    def check(self, listener: str, open_socket) -> None:
        self.relay.sync()
        mark = self.relay.mark()
        ports = []
        for _ in range(CLIENTS):
            sock = open_socket(listener)
            ports.append(sock.getsockname()[1])
            handshake_and_close(sock, "mail.a.test")
        for port in ports:
            fields = self.postern.session_end(port, listener)
            self.assertEqual(fields.get("end"), "handshake_only", fields["_line"])
            self.assertNotIn("backend_addr", fields)
        self.relay.sync()
        self.assertEqual(len(self.relay.connections(since=mark)), 0,
                         "the backend was connected for clients that had gone")
        # The control: a command before the close reaches the backend.
        sock = open_socket(listener)
        port = sock.getsockname()[1]
        handshake_and_close(sock, "mail.a.test", b"a LOGOUT\r\n")
        self.assertNotEqual(self.postern.session_end(port, listener).get("end"), "handshake_only")
        self.relay.sync()
        self.assertEqual(len(self.relay.connections(since=mark)), 1)

    def test_implicit_tls(self):
        self.check("imaps", self.connect)

    def test_after_starttls(self):
        self.check("imap", self.starttls)


if __name__ == "__main__":
    unittest.main()
