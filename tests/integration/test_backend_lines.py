"""A backend line longer than postern's dialogue buffer: up to max_backend_line (64 KiB) it is
read whole and relayed; past it the session ends at once with the protocol's error and a log
line, not after idle_timeout. A scripted backend (a greeting of the given length) behind
postern's implicit-TLS IMAP listener; Python's ssl as the client."""

import socket
import threading
import time
import unittest

from harness import LOCALHOST, IntegrationCase, Pki, Postern, free_port, tls_connect


class ScriptedImap:
    """Accepts connections; greets each with `* OK <filler>` of `length` bytes, then answers
    `a LOGOUT` with BYE/OK; one thread per connection."""

    def __init__(self):
        self.port = free_port()
        self.length = 0
        self.sock = socket.create_server((LOCALHOST, self.port))
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn: socket.socket):
        with conn:
            conn.settimeout(20)
            filler = b"x" * max(0, self.length - len(b"* OK \r\n"))
            try:
                conn.sendall(b"* OK " + filler + b"\r\n")
                data = b""
                while b"LOGOUT" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                conn.sendall(b"* BYE bye\r\na OK done\r\n")
            except OSError:
                return

    def stop(self):
        self.sock.close()


class BackendLines(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.backend = ScriptedImap()
        cls.addClassCleanup(cls.backend.stop)
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.backend("scripted", f"{LOCALHOST}:{cls.backend.port}")
        p.listener("imap", "imap", "scripted", idle_timeout="60s")
        p.start()

    def greeting(self, length: int) -> tuple[bytes, float, int]:
        self.backend.length = length
        started = time.monotonic()
        tls = tls_connect(self.postern.port("imap"), "mail.a.test")
        port = tls.getsockname()[1]
        tls.settimeout(15)
        data = b""
        try:
            while not data.endswith(b"\r\n"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            tls.close()
        return data, time.monotonic() - started, port

    def test_a_line_longer_than_a_buffer_chunk_is_relayed_whole(self):
        data, elapsed, _ = self.greeting(40 * 1024)
        self.assertEqual(len(data), 40 * 1024, data[:80])
        self.assertTrue(data.startswith(b"* OK xxx"))
        self.assertLess(elapsed, 5)

    def test_a_line_over_max_backend_line_ends_the_session_at_once(self):
        data, elapsed, port = self.greeting(70 * 1024)
        self.assertRegex(data, rb"^\* BYE ", data[:80])
        self.assertLess(elapsed, 5, "closed only by a timeout")
        fields = self.postern.session_end(port, "imap")
        self.assertEqual(fields.get("end"), "protocol_error", fields["_line"])


if __name__ == "__main__":
    unittest.main()
