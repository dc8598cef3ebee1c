"""RecordingRelay: a TCP relay between postern and a backend that records every byte of every
connection, so a test can prove what a backend did (or did not) receive."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Optional

from .base import LOCALHOST, Service, WaitTimeout


class RecordingRelay(Service):
    """A loopback TCP relay to ``target`` ("host:port") that records every connection: what the
    connecting side (postern) sent towards the target (``to_backend``) and what came back
    (``to_client``). Put it between postern and a backend to see exactly which bytes the
    backend received. ``mark()`` + ``connections(since=mark)`` select the connections opened
    after a point in a test; ``sync()`` makes sure every connection opened so far is among them
    (to prove that none was opened, without sleeping).
    """

    name = "relay"

    class Connection:
        def __init__(self, number: int, peer: tuple):
            self.number, self.peer = number, peer
            self.to_backend = bytearray()
            self.to_client = bytearray()
            self.closed = threading.Event()

    def __init__(self, workdir: Path, target: str, name: str = "relay"):
        super().__init__(workdir)
        self.name = name
        host, port = target.rsplit(":", 1)
        self.target = (host.strip("[]"), int(port))
        self.log = self.dir / f"{name}.log"
        self.logs = [self.log]
        self._lock = threading.Lock()
        self._conns: list[RecordingRelay.Connection] = []
        self._listener: Optional[socket.socket] = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._markers: dict[int, threading.Event] = {}  # sync(): source port -> accepted
        self.port = 0

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def start(self) -> "RecordingRelay":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOCALHOST, 0))
        s.listen(64)
        s.settimeout(0.2)
        self._listener, self.port = s, s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        for t in self._threads:
            t.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def mark(self) -> int:
        with self._lock:
            return len(self._conns)

    def connections(self, since: int = 0) -> list["RecordingRelay.Connection"]:
        with self._lock:
            return list(self._conns[since:])

    def sync(self, timeout: float = 5.0) -> None:
        """Returns once every connection made to the relay before this call is recorded: connects
        a marker to itself and waits until the accept loop reaches it (the kernel's accept queue
        is first in, first out). The marker is neither recorded nor relayed."""
        marker = socket.socket()
        try:
            marker.bind((LOCALHOST, 0))
            accepted = threading.Event()
            with self._lock:
                self._markers[marker.getsockname()[1]] = accepted
            marker.settimeout(timeout)
            marker.connect((LOCALHOST, self.port))
            if not accepted.wait(timeout):
                raise WaitTimeout(f"{self.name}: marker connection not accepted in {timeout:g}s")
        finally:
            marker.close()

    def _write_log(self, line: str) -> None:
        with self._lock, open(self.log, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                marker = self._markers.pop(peer[1], None) if peer[0] == LOCALHOST else None
                if marker is None:
                    conn = RecordingRelay.Connection(len(self._conns), peer)
                    self._conns.append(conn)
            if marker is not None:
                client.close()
                marker.set()
                continue
            t = threading.Thread(target=self._pump, args=(conn, client), daemon=True,
                                 name=f"{self.name}-{conn.number}")
            t.start()
            self._threads.append(t)

    def _pump(self, conn: "RecordingRelay.Connection", client: socket.socket) -> None:
        self._write_log(f"#{conn.number} from {conn.peer[0]}:{conn.peer[1]}")
        try:
            backend = socket.create_connection(self.target, 5)
        except OSError as e:
            self._write_log(f"#{conn.number} connect {self.target}: {e}")
            client.close()
            conn.closed.set()
            return
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, (backend, conn.to_backend, ">"))
        sel.register(backend, selectors.EVENT_READ, (client, conn.to_client, "<"))
        open_sides = 2
        try:
            while open_sides and not self._stopping.is_set():
                for key, _ in sel.select(0.2):
                    dest, record, arrow = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        with self._lock:
                            record += data
                        self._write_log(f"#{conn.number} {arrow} {data!r}")
                        with contextlib.suppress(OSError):
                            dest.sendall(data)
                    else:
                        sel.unregister(key.fileobj)
                        open_sides -= 1
                        with contextlib.suppress(OSError):
                            dest.shutdown(socket.SHUT_WR)
        finally:
            sel.close()
            client.close()
            backend.close()
            self._write_log(f"#{conn.number} closed")
            conn.closed.set()
