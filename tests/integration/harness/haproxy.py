"""HAProxy as the TCP load balancer in front of postern (accept_proxy): each frontend passes its
connections through unchanged (TLS included) to one postern listener, with a PROXY header."""

from __future__ import annotations

from pathlib import Path

from .base import LOCALHOST, Daemon, Service, free_port, run, wait_listening


class Haproxy(Service):
    """haproxy in TCP mode (recipes 6.2): frontend(name, target) -> a port on 127.0.0.1 that
    forwards to target ("host:port") with `send-proxy-v2` (or `send-proxy`: v1). Logs one line
    per connection to haproxy.log (client address and port, frontend, bytes, termination)."""

    name = "haproxy"

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.frontends: dict[str, tuple[int, str, str]] = {}  # name -> (port, target, option)
        # name -> (port, [(server name, target, health port)]): round robin over several
        self.balanced_frontends: dict[str, tuple[int, list[tuple[str, str, int]]]] = {}
        self.cfg = self.dir / "haproxy.cfg"
        self.log = self.dir / "haproxy.log"
        self.logs = [self.log]
        self.daemon = None

    def frontend(self, name: str, target: str, send_proxy: str = "send-proxy-v2") -> int:
        port = free_port()
        self.frontends[name] = (port, target, send_proxy)
        return port

    def balanced(self, name: str, servers: list[tuple[str, str, int]]) -> int:
        """A frontend balancing round robin over servers (name, "host:port", health port) with
        send-proxy-v2, each checked every 200 ms with GET /readyz on its health port (503 while it drains): down
        after one failure, up after one success."""
        port = free_port()
        self.balanced_frontends[name] = (port, servers)
        return port

    def port(self, name: str) -> int:
        if name in self.balanced_frontends:
            return self.balanced_frontends[name][0]
        return self.frontends[name][0]

    def config_text(self) -> str:
        out = ["global", "    log stdout format raw local0 info", "    maxconn 256",
               "defaults", "    mode tcp", "    log global",
               '    log-format "%ci:%cp %ft %b/%s %Tw/%Tc/%Tt %B %ts"',
               "    timeout connect 5s", "    timeout client 60s", "    timeout server 60s"]
        for name, (port, target, option) in self.frontends.items():
            out += ["", f"frontend {name}", f"    bind {LOCALHOST}:{port}",
                    f"    default_backend to_{name}",
                    f"backend to_{name}", f"    server postern {target} {option}"]
        for name, (port, servers) in self.balanced_frontends.items():
            out += ["", f"frontend {name}", f"    bind {LOCALHOST}:{port}",
                    f"    default_backend to_{name}",
                    f"backend to_{name}", "    balance roundrobin",
                    "    option httpchk", "    http-check send meth GET uri /readyz",
                    "    default-server inter 200ms fall 1 rise 1"]
            out += [f"    server {server} {target} send-proxy-v2 check port {health}"
                    for server, target, health in servers]
        return "\n".join(out) + "\n"

    def start(self) -> "Haproxy":
        self.cfg.write_text(self.config_text())
        run(["haproxy", "-c", "-f", self.cfg], check=True)
        self.daemon = Daemon("haproxy", ["haproxy", "-db", "-f", self.cfg], self.log).start()
        ports = [p for p, _, _ in self.frontends.values()]
        ports += [p for p, _ in self.balanced_frontends.values()]
        wait_listening(ports, 10, self.daemon.proc, "haproxy")
        return self

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop()
