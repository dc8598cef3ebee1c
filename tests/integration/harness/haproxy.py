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
        self.cfg = self.dir / "haproxy.cfg"
        self.log = self.dir / "haproxy.log"
        self.logs = [self.log]
        self.daemon = None

    def frontend(self, name: str, target: str, send_proxy: str = "send-proxy-v2") -> int:
        port = free_port()
        self.frontends[name] = (port, target, send_proxy)
        return port

    def port(self, name: str) -> int:
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
        return "\n".join(out) + "\n"

    def start(self) -> "Haproxy":
        self.cfg.write_text(self.config_text())
        run(["haproxy", "-c", "-f", self.cfg], check=True)
        self.daemon = Daemon("haproxy", ["haproxy", "-db", "-f", self.cfg], self.log).start()
        wait_listening([p for p, _, _ in self.frontends.values()], 10, self.daemon.proc, "haproxy")
        return self

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop()
