"""Real Courier IMAP and POP3 as exec backends, without couriertcpd: postern runs imaplogin
(then imapd) and courierpop3login (then courierpop3d) once per session, as couriertcpd would,
with the UCSPI variables Courier needs (recipes 3b). The user authenticates through
courier-authdaemond and reads a seeded message, on an implicit-TLS and on a STARTTLS listener,
from 127.0.0.2; Courier's log (its stderr, now in postern's log under the backend's name)
names that address and the client's own port. The same again with postern as nobody
(server.user) and the login programs started as root by its privileged helper. Only successful
logins: Courier stalls 5 s after a failed one."""

import os
import re
import socket
import unittest

from harness import (PASSWORD, USER, Courier, ImapSni, ImapStarttls, IntegrationCase,
                     Pki, Pop3Sni, Pop3Starttls, Postern, message, unique)

CLIENT_IP = "127.0.0.2"

# What couriertcpd would pass from imapd's and pop3d's config files (servers/courier-*.sh.in).
IMAP_CAPABILITY = ("IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES "
                   "SORT QUOTA IDLE AUTH=PLAIN")
IMAP_ENV = {"IMAP_CAPABILITY": IMAP_CAPABILITY, "IMAP_CAPABILITY_TLS": IMAP_CAPABILITY,
            "IMAP_STARTTLS": "NO", "IMAP_TLS_REQUIRED": "0", "IMAP_KEYWORDS": "1",
            "IMAP_ACL": "1", "IMAP_IDLE_TIMEOUT": "60", "IMAP_UMASK": "022",
            "IMAP_USELOCKS": "1", "IMAP_SHAREDINDEXFILE": "/etc/courier/shared/index",
            "IMAP_TRASHFOLDERNAME": "Trash", "IMAP_EMPTYTRASH": "Trash:7",
            "IMAP_MOVE_EXPUNGE_TO_TRASH": "0", "IMAP_PROXY": "0", "MAILDIRPATH": "Maildir",
            "DEBUG_LOGIN": "1"}
POP3_ENV = {"POP3AUTH": "PLAIN LOGIN", "POP3AUTH_TLS": "PLAIN LOGIN", "POP3_STARTTLS": "NO",
            "POP3_TLS_REQUIRED": "0", "MAILDIRPATH": "Maildir", "DEBUG_LOGIN": "1"}


def connect_from(address, timeout) -> socket.socket:
    return socket.create_connection(address, timeout=timeout, source_address=(CLIENT_IP, 0))


class ImapTlsFrom(ImapSni):
    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(connect_from((self._connect_host, self.port), timeout),
                                            server_hostname=self._sni)


class ImapStarttlsFrom(ImapStarttls):
    def _create_socket(self, timeout):
        return connect_from((self._connect_host, self.port), timeout)


class Pop3TlsFrom(Pop3Sni):
    def _create_socket(self, timeout):
        return self.context.wrap_socket(connect_from((self._connect_host, self.port), timeout),
                                        server_hostname=self._sni)


class Pop3StarttlsFrom(Pop3Starttls):
    def _create_socket(self, timeout):
        return connect_from((self._connect_host, self.port), timeout)


class CourierExec(IntegrationCase):
    # exec_user for the login programs: postern's own user (root here) when None
    EXEC_USER = None

    @classmethod
    def configure(cls, p: Postern) -> None:
        pass

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.courier = cls.own(Courier(cls.tmp / "courier")).start()  # authdaemond, userdb
        bin_dir = cls.courier.root / "usr/lib/courier/courier"
        p = cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        cls.configure(p)
        user = {"exec_user": cls.EXEC_USER} if cls.EXEC_USER else {}
        p.exec_backend("courier_imap",
                       [bin_dir / "imaplogin", cls.courier.root / "usr/bin/imapd", "Maildir"],
                       exec_env=IMAP_ENV, **user)
        p.exec_backend("courier_pop3",
                       [bin_dir / "courierpop3login", bin_dir / "courierpop3d", "Maildir"],
                       exec_env=POP3_ENV, **user)
        p.listener("imaps", "imap", "courier_imap")
        p.listener("imap", "imap", "courier_imap", tls="starttls")
        p.listener("pop3s", "pop3", "courier_pop3")
        p.listener("pop3", "pop3", "courier_pop3", tls="starttls")
        p.start()

    def assert_courier_saw_client(self, backend: str, port: int, tail: str = "") -> None:
        """Courier's LOGIN line, from its stderr, names the client's address and port
        ("ip=[127.0.0.2], port=[40123]": TCPREMOTEIP, TCPREMOTEPORT)."""
        self.postern.wait_log(
            rf"info {backend}\[\d+\]: INFO: LOGIN, user=test(@a\.test)?, "
            rf"ip=\[{re.escape(CLIENT_IP)}\], port=\[{port}\]{re.escape(tail)}$",
            since=self.postern.test_began)

    def assert_quit(self, port: int, listener: str, backend: str) -> None:
        fields = self.postern.session_end(port, listener, host=CLIENT_IP)
        self.assertEqual(fields.get("backend"), backend, fields["_line"])
        self.assertEqual(fields.get("end"), "client_quit", fields["_line"])

    def test_imap_implicit_tls(self):
        subject = unique("exec-imaps")
        self.courier.seed(message(subject))
        m = ImapTlsFrom("mail.a.test", self.postern.port("imaps"), ssl_context=self.pki.context())
        port = m.sock.getsockname()[1]
        self.read_message(m, subject)
        self.assert_courier_saw_client("courier_imap", port, ", protocol=IMAP")
        self.assert_quit(port, "imaps", "courier_imap")

    def test_imap_starttls(self):
        subject = unique("exec-imap")
        self.courier.seed(message(subject))
        m = ImapStarttlsFrom("mail.b.test", self.postern.port("imap"))
        port = m.sock.getsockname()[1]
        self.assertEqual(m.starttls(ssl_context=self.pki.context())[0], "OK")
        self.read_message(m, subject)
        self.assert_courier_saw_client("courier_imap", port, ", protocol=IMAP")
        self.assert_quit(port, "imap", "courier_imap")

    def pop3_read(self, p, subject: str) -> None:
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        count, _ = p.stat()
        found = any(f"Subject: {subject}".encode() in b"\n".join(p.retr(i)[1])
                    for i in range(1, count + 1))
        self.assertTrue(found, f"Subject: {subject} not among {count} messages")
        p.quit()

    def test_pop3_implicit_tls(self):
        subject = unique("exec-pop3s")
        self.courier.seed(message(subject))
        p = Pop3TlsFrom("x.c.test", self.postern.port("pop3s"), context=self.pki.context())
        port = p.sock.getsockname()[1]
        self.pop3_read(p, subject)
        self.assert_courier_saw_client("courier_pop3", port)
        self.assert_quit(port, "pop3s", "courier_pop3")

    def test_pop3_starttls(self):
        subject = unique("exec-pop3")
        self.courier.seed(message(subject))
        p = Pop3StarttlsFrom("mail.a.test", self.postern.port("pop3"))
        port = p.sock.getsockname()[1]
        self.assertTrue(p.stls(context=self.pki.context()).startswith(b"+OK"))
        self.pop3_read(p, subject)
        self.assert_courier_saw_client("courier_pop3", port)
        self.assert_quit(port, "pop3", "courier_pop3")


@unittest.skipUnless(os.geteuid() == 0, "server.user needs root")
class CourierExecAsServerUser(CourierExec):
    """postern runs as nobody (server.user) and Courier's login programs, which must be root to
    become the mail user, are started as root by postern's privileged helper."""
    EXEC_USER = "root"

    @classmethod
    def configure(cls, p: Postern) -> None:
        p.server["user"] = "nobody"

    def test_runs_as_nobody(self):
        self.postern.wait_log(r"running as user nobody .* privileged helper \(pid \d+\)")

    # The other three are CourierExec's; one each way is enough here.
    test_imap_starttls = None
    test_pop3_implicit_tls = None


if __name__ == "__main__":
    unittest.main()
