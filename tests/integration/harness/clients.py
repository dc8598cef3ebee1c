"""Clients: TLS sockets and stdlib IMAP/POP3/SMTP clients that connect to 127.0.0.1 while
sending a chosen SNI (implicit TLS and STARTTLS), LineClient for exact protocol dialogues, and
sni_sent_by() to see which SNI a CLI client really puts in its ClientHello."""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import smtplib
import socket
import ssl
import struct
import subprocess
from typing import Callable, Optional

from .base import LOCALHOST


def no_verify() -> ssl.SSLContext:
    """A TLS client context that checks neither the chain nor the name (tests look at the
    certificate themselves where it matters)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_connect(port: int, sni: Optional[str], *, host: str = LOCALHOST, context: Optional[ssl.SSLContext] = None,
                timeout: float = 10.0, source: Optional[str] = None) -> ssl.SSLSocket:
    """TLS client socket to host:port sending SNI sni (None: no SNI). Default: no verification.
    source: the local address to connect from (e.g. "127.0.0.2", to differ from postern's)."""
    return _wrap(context or no_verify(), (host, port), sni, timeout, source)


def plain_connect(port: int, *, host: str = LOCALHOST, timeout: float = 10.0,
                  source: Optional[str] = None) -> socket.socket:
    """A plaintext TCP connection to host:port, from the local address source if given."""
    return socket.create_connection((host, port), timeout, _bind(source))


def _bind(source: Optional[str]):
    return (source, 0) if source else None


def _wrap(context: ssl.SSLContext, address, sni: Optional[str], timeout,
          source: Optional[str] = None) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=timeout, source_address=_bind(source))
    try:
        return context.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


class LineClient:
    """Line-oriented dialogue over a (TLS or plain) socket, for exact protocol assertions."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.file = sock.makefile("rb")
        self.transcript: list[str] = []

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def readline(self) -> str:
        line = self.file.readline()
        self.transcript.append("S: " + line.decode(errors="replace").rstrip("\r\n"))
        return line.decode(errors="replace")

    def send(self, line: str) -> None:
        self.transcript.append("C: " + line)
        self.sock.sendall(line.encode() + b"\r\n")

    def imap(self, tag: str, command: str) -> list[str]:
        """Sends `tag command`, returns every line up to and including the tagged one."""
        self.send(f"{tag} {command}")
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed before the tagged reply to {command!r}: {lines}")
            lines.append(line)
            if line.startswith(tag + " "):
                return lines

    def pop3_multiline(self, command: str) -> list[str]:
        self.send(command)
        first = self.readline()
        lines = [first]
        if not first.startswith("+OK"):
            return lines
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed inside the reply to {command!r}: {lines}")
            lines.append(line)
            if line.rstrip("\r\n") == ".":
                return lines

    def smtp_reply(self) -> list[str]:
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed inside an SMTP reply: {lines}")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def smtp(self, command: str) -> list[str]:
        self.send(command)
        return self.smtp_reply()

    def read_to_eof(self, limit: int = 1 << 16) -> str:
        """Everything until the peer closes (bounded by the socket timeout)."""
        data = b""
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            while len(data) < limit:
                chunk = self.file.read1(4096)
                if not chunk:
                    break
                data += chunk
        text = data.decode(errors="replace")
        self.transcript.append("S: " + text)
        return text

    def starttls(self, sni: Optional[str], context: Optional[ssl.SSLContext] = None) -> None:
        """Upgrades this plaintext dialogue to TLS in place, sending SNI sni (None: none), after
        the server's go-ahead was read. Default context: no verification."""
        context = context or no_verify()
        self.file.close()  # the socket stays open; makefile() is made again on the TLS socket
        self.transcript.append(f"-- TLS handshake (SNI {sni})")
        self.sock = context.wrap_socket(self.sock, server_hostname=sni)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class ImapSni(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS: connects to connect_host (from source, if given), sends SNI
    sni (host name checked)."""

    def __init__(self, sni: Optional[str], port: int, *, ssl_context: ssl.SSLContext,
                 connect_host: str = LOCALHOST, timeout: float = 10.0, source: Optional[str] = None):
        self._connect_host, self._sni, self._source = connect_host, sni, source
        super().__init__(sni or connect_host, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout):
        return _wrap(self.ssl_context, (self._connect_host, self.port), self._sni, timeout, self._source)


class Pop3Sni(poplib.POP3_SSL):
    def __init__(self, sni: Optional[str], port: int, *, context: ssl.SSLContext,
                 connect_host: str = LOCALHOST, timeout: float = 10.0, source: Optional[str] = None):
        self._connect_host, self._sni, self._source = connect_host, sni, source
        try:
            super().__init__(sni or connect_host, port, context=context, timeout=timeout)
        except BaseException:  # poplib leaves the socket open when the greeting is -ERR
            if getattr(self, "sock", None) is not None:
                self.sock.close()
            raise

    def _create_socket(self, timeout):
        return _wrap(self.context, (self._connect_host, self.port), self._sni, timeout, self._source)


class SmtpSni(smtplib.SMTP_SSL):
    def __init__(self, sni: Optional[str], port: int, *, context: ssl.SSLContext,
                 connect_host: str = LOCALHOST, timeout: float = 10.0, source: Optional[str] = None):
        self._connect_host, self._sni, self._source = connect_host, sni, source
        super().__init__(sni or connect_host, port, context=context, timeout=timeout)

    def _get_socket(self, host, port, timeout):
        return _wrap(self.context, (self._connect_host, port), self._sni, timeout, self._source)


class _PlainToHost:
    """Mixin for imaplib/poplib: the library's host is the SNI name (sent and checked after
    STARTTLS/STLS), while the plaintext connection goes to connect_host (from source, if given)."""

    def __init__(self, sni: Optional[str], port: int, *, connect_host: str = LOCALHOST,
                 timeout: float = 10.0, source: Optional[str] = None):
        self._connect_host, self._source = connect_host, source
        super().__init__(sni or connect_host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self._connect_host, self.port), timeout, _bind(self._source))


class ImapStarttls(_PlainToHost, imaplib.IMAP4):
    """imaplib in plaintext to connect_host; starttls(ssl_context=...) then sends SNI sni and
    checks the certificate against it (imaplib passes self.host as server_hostname)."""


class Pop3Starttls(_PlainToHost, poplib.POP3):
    """poplib in plaintext to connect_host; stls(context=...) then sends SNI sni."""


class SmtpStarttls(smtplib.SMTP):
    """smtplib in plaintext to connect_host; starttls(context=...) then sends SNI sni
    (smtplib passes self._host as server_hostname)."""

    def __init__(self, sni: Optional[str], port: int, *, connect_host: str = LOCALHOST,
                 timeout: float = 10.0, local_hostname: str = "client.c.test",
                 source: Optional[str] = None):
        super().__init__(timeout=timeout, local_hostname=local_hostname, source_address=_bind(source))
        self.connect(connect_host, port)
        self._host = sni or connect_host



def parse_client_hello_sni(data: bytes) -> Optional[bytes]:
    """server_name from a TLS ClientHello record (None if the extension is absent)."""
    if len(data) < 9 or data[0] != 0x16 or data[5] != 0x01:
        raise ValueError("not a TLS ClientHello")
    p = 9 + 2 + 32
    p += 1 + data[p]                                   # session id
    p += 2 + struct.unpack_from("!H", data, p)[0]      # cipher suites
    p += 1 + data[p]                                   # compression methods
    end = p + 2 + struct.unpack_from("!H", data, p)[0]
    p += 2
    while p + 4 <= end:
        ext_type, ext_len = struct.unpack_from("!HH", data, p)
        p += 4
        if ext_type == 0:
            name_len = struct.unpack_from("!H", data, p + 3)[0]
            return data[p + 5:p + 5 + name_len]
        p += ext_len
    return None


def sni_sent_by(make_argv: Callable[[int], list], timeout: float = 10.0) -> Optional[bytes]:
    """Runs a CLI client (make_argv(port) -> argv) against a local socket that only records the
    ClientHello, and returns the SNI it carried (bytes as sent, None when absent)."""
    srv = socket.socket()
    srv.bind((LOCALHOST, 0))
    srv.listen(1)
    srv.settimeout(timeout)
    port = srv.getsockname()[1]
    proc = subprocess.Popen([str(a) for a in make_argv(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = srv.accept()
        conn.settimeout(timeout)
        data = b""
        with conn:
            while len(data) < 5 or len(data) < 5 + struct.unpack_from("!H", data, 3)[0]:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return parse_client_hello_sni(data)
    finally:
        srv.close()
        with contextlib.suppress(Exception):
            proc.kill()
        proc.wait(10)
        proc.stdin.close()
