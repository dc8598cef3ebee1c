"""STARTTLS command injection, shown on a real server and then refused by postern.

Courier's POP3 on Debian 12 (courier-pop 1.0.16) executes a command pipelined after STLS inside
the TLS session (CVE-2021-38084, the CVE-2011-0411 class; NO STARTTLS, USENIX Security 2021).
This file first proves that with Courier's own STARTTLS (POP3_STARTTLS=YES, couriertls), using
the same raw client the postern tests use, so that client demonstrably detects an injection;
then sends the same bytes to postern's STLS in front of a plaintext Courier POP3 and checks that
nothing is executed.

No login is needed, so Courier's machine-global authdaemond is not involved: couriertcpd and
courierpop3login run straight from the extracted packages (harness.courier_root()).
"""

import re
import shutil
import socket
import ssl
import unittest

from harness import (Daemon, IntegrationCase, LOCALHOST, LineClient, Pki, Postern, Service,
                     WaitTimeout, courier_root, free_ports, no_verify, run, wait_listening,
                     wait_until)


class CourierPop3(Service):
    """courierpop3login behind couriertcpd on two ports: `port` plaintext only, `tls_port` with
    STLS (couriertls, a self-signed ECDSA certificate owned by the courier user, which
    courierpop3login runs couriertls as)."""

    name = "courier-pop3"

    def __init__(self, workdir):
        super().__init__(workdir)
        root = courier_root()
        self.port, self.tls_port = free_ports(2)
        key, crt, self.pem = self.dir / "tls.key", self.dir / "tls.crt", self.dir / "tls.pem"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=courier.test"],
            check=True)
        self.pem.write_text(key.read_text() + crt.read_text())
        key.unlink()
        self.pem.chmod(0o600)
        shutil.chown(self.pem, "courier")
        login = root / "usr/lib/courier/courier/courierpop3login"
        pop3d = root / "usr/lib/courier/courier/courierpop3d"

        def daemon(name, port, starttls):
            env = ["env", "-i", "PATH=/usr/bin:/bin:/usr/sbin", "POP3AUTH=PLAIN LOGIN",
                   "POP3AUTH_TLS=PLAIN LOGIN", f"POP3_STARTTLS={'YES' if starttls else 'NO'}",
                   "POP3_TLS_REQUIRED=0", "COURIERTLS=/usr/bin/couriertls",
                   f"TLS_CERTFILE={self.pem}", "MAILDIRPATH=Maildir", "DEBUG_LOGIN=1"]
            return Daemon(name, env + ["/usr/sbin/couriertcpd", f"-address={LOCALHOST}", "-nodnslookup",
                                       "-noidentlookup", "-maxprocs=20", str(port), login, pop3d,
                                       "Maildir"], self.dir / f"{name}.log")
        self.plain = daemon("pop3-plain", self.port, False)
        self.tls = daemon("pop3-stls", self.tls_port, True)
        self.logs = [self.plain.log, self.tls.log]

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def start(self) -> "CourierPop3":
        self.plain.start()
        self.tls.start()
        wait_listening([self.port], 10, self.plain.proc, "courier pop3")
        wait_listening([self.tls_port], 10, self.tls.proc, "courier pop3 (STLS)")
        return self

    def stop(self):
        self.tls.stop()
        self.plain.stop()


def stls_with(port: int, pipelined: bytes, sni: str = "mail.a.test"):
    """Greeting, then b"STLS\\r\\n" + pipelined in one segment, the go-ahead, the handshake on
    the same socket; returns (TLS socket, the go-ahead line)."""
    s = socket.create_connection((LOCALHOST, port), 5)
    s.settimeout(5)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before the greeting: {data!r}")
        data += chunk
    assert data.startswith(b"+OK"), data
    s.sendall(b"STLS\r\n" + pipelined)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before the STLS reply: {reply!r}")
        reply += chunk
    return no_verify().wrap_socket(s, server_hostname=sni), reply


def answered_before_marker(tls: ssl.SSLSocket) -> bytes:
    """What the server sends after the handshake before its reply to a marker command: the
    replies to commands pipelined after STLS come first, in order (b"" when none was executed).
    The marker is NOOP, which Courier answers with -ERR before login, unlike every pipelined
    command here (CAPA, USER and QUIT get +OK). A server that closes first: all it sent."""
    tls.settimeout(5)
    tls.sendall(b"NOOP\r\n")
    data = b""
    while True:
        m = re.search(rb"(?m)^-ERR[^\r\n]*\r\n", data)
        if m:
            return data[:m.start()]
        try:
            chunk = tls.recv(4096)
        except (socket.timeout, TimeoutError):
            raise AssertionError(f"no reply to the marker NOOP within 5 s; got {data!r}") from None
        if not chunk:
            return data
        data += chunk


class CourierInjection(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.courier = cls.own(CourierPop3(cls.tmp / "courier")).start()
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        p.server["hostname"] = "mx.postern.test"
        p.backend("courier_pop3", cls.courier.address)
        p.listener("pop3", "pop3", "courier_pop3", tls="starttls")
        p.start()

    def test_courier_pop3_executes_command_pipelined_after_stls(self):
        # control: without a pipelined command Courier sends nothing before the marker's reply
        tls, reply = stls_with(self.courier.tls_port, b"")
        self.assertTrue(reply.startswith(b"+OK"), reply)
        self.assertEqual(answered_before_marker(tls), b"")
        tls.close()
        # the attack: CAPA pipelined in the STLS segment is answered inside TLS, unasked
        tls, reply = stls_with(self.courier.tls_port, b"CAPA\r\n")
        self.assertTrue(reply.startswith(b"+OK"), reply)
        got = answered_before_marker(tls)
        tls.close()
        self.assertRegex(got, rb"^\+OK[^\r\n]*\r\n(.*\r\n)*IMPLEMENTATION Courier",
                         "courier-pop no longer executes the pipelined command (CVE-2021-38084 "
                         f"fixed?): got {got!r}; this demonstration then needs another vulnerable server")
        self.assertIn("command=CAPA", self.courier.log_text())

    def test_postern_in_front_of_courier_discards_the_pipelined_command(self):
        port = self.postern.port("pop3")
        for pipelined in (b"CAPA\r\n", b"USER test\r\nPASS secret\r\n", b"CAPA\r\nQUIT\r\n"):
            with self.subTest(pipelined=pipelined):
                before = len(self.plain_commands())
                tls, reply = stls_with(port, pipelined)
                client_port = tls.getsockname()[1]
                self.assertRegex(reply, rb"\A\+OK [^\r\n]*\r\n\Z")
                self.assertEqual(answered_before_marker(tls), b"",
                                 "postern answered the pipelined command")
                c = LineClient(tls)
                capa = c.pop3_multiline("CAPA")  # the session goes on: it is Courier's list
                self.assertIn("IMPLEMENTATION Courier Mail Server\r\n", capa)
                self.assertNotIn("STLS\r\n", capa)
                c.send("QUIT")
                self.assertTrue(c.readline().startswith("+OK"), c.transcript)
                self.assertEqual(c.read_to_eof(), "")
                c.close()
                fields = self.postern.session_end(client_port, "pop3")
                self.assertEqual(fields.get("end"), "client_quit", fields["_line"])
                # Courier (DEBUG_LOGIN=1) logs each command it reads: the marker, CAPA and QUIT
                try:
                    wait_until(lambda: len(self.plain_commands()) >= before + 3, 5,
                               "Courier logging the session's commands")
                except WaitTimeout:
                    pass
                self.assertEqual(self.plain_commands()[before:], ["NOOP", "CAPA", "QUIT"])

    def plain_commands(self) -> list:
        try:
            text = self.courier.plain.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return re.findall(r"command=(\S+)", text)


if __name__ == "__main__":
    unittest.main()
