"""docker/compose.yaml's stack, run without compose: the same three images (postern, and the
Dovecot and Postfix backends from docker/compose/) with the same mounted files
(docker/postern.compose.toml, docker/compose/dovecot.conf, docker/compose/users), then real
IMAPS, POP3S and SMTPS (submissions) sessions through postern on its compose ports.

    cd tests/docker && python3 -m unittest -v test_compose

No compose tool and no bridge networking here: the containers share one private network namespace
(loopback only; the first container's, `--network none`, the others join it), and a hosts file
maps the compose service names dovecot and postfix to 127.0.0.1. The clients run in that
namespace through nsenter. Needs root. Environment as for test_image.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCKER = REPO / "docker"
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))
import harness  # noqa: E402  pylint: disable=wrong-import-position
from test_image import IMAGE, CONTAINER_UID, podman  # noqa: E402

BASE = os.environ.get("POSTERN_BASE_IMAGE", "docker.io/library/debian:bookworm")
DOVECOT_IMAGE = "localhost/postern-compose-dovecot:dev"
POSTFIX_IMAGE = "localhost/postern-compose-postfix:dev"
NAME = "mail.example.net"                    # postern.compose.toml default_certificate
USER, PASSWORD = "alice@example.net", "change-me"  # docker/compose/users
PORTS = {"imaps": 10993, "pop3s": 10995, "smtps": 10465}  # postern.compose.toml listeners
BACKEND_PORTS = [143, 110, 24, 12345, 25]


class ExamplePki(harness.Pki):
    CERTS = {"example": ([NAME], 30)}
    CHAIN = {"example"}  # fullchain.pem: leaf + CA


def listening_in(pid: int) -> set[int]:
    """LISTEN ports in the network namespace of process pid (its /proc/PID/net/tcp*)."""
    ports = set()
    for name in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{name}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A":
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def client(ca: str, subject: str) -> dict:
    """Runs inside the containers' network namespace (see test): mail through postern."""
    import smtplib
    import ssl
    ctx = ssl.create_default_context(cafile=ca)  # verifies the chain and the name (SNI)
    out: dict = {}

    m = harness.ImapSni(NAME, PORTS["imaps"], ssl_context=ctx)
    out["imaps_cn"] = dict(x[0] for x in m.sock.getpeercert()["subject"])["commonName"]
    out["imaps_login"] = m.login(USER, PASSWORD)[0]
    m.logout()

    s = harness.SmtpSni(NAME, PORTS["smtps"], context=ctx)
    s.ehlo("client.test")
    out["smtps_auth_offered"] = s.has_extn("auth")
    try:  # everything reaches Postfix from postern's address: relaying must still need AUTH
        s.sendmail("x@example.org", ["y@example.org"], b"Subject: relay\r\n\r\nno\r\n")
        out["unauthenticated_relay"] = "accepted"
    except smtplib.SMTPRecipientsRefused as e:
        out["unauthenticated_relay"] = str(list(e.recipients.values())[0][0])
    s.rset()
    s.login(USER, PASSWORD)
    s.sendmail(USER, [USER], harness.message(subject, to=USER, sender=USER))
    s.quit()

    deadline = time.monotonic() + 15
    found = False
    while not found and time.monotonic() < deadline:
        m = harness.ImapSni(NAME, PORTS["imaps"], ssl_context=ctx)
        m.login(USER, PASSWORD)
        m.select("INBOX", readonly=True)
        found = bool(m.search(None, "SUBJECT", f'"{subject}"')[1][0].split())
        m.logout()
        if not found:
            time.sleep(0.2)
    out["delivered"] = found

    p = harness.Pop3Sni(NAME, PORTS["pop3s"], context=ctx)
    p.user(USER)
    p.pass_(PASSWORD)
    out["pop3s_messages"] = p.stat()[0]
    p.quit()
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: podman, nsenter")
class ComposeExample(harness.IntegrationCase):

    @classmethod
    def start_fixtures(cls):
        if not (os.environ.get("POSTERN_DOCKER_SKIP_BUILD") == "1"
                and podman("image", "exists", IMAGE, check=False).returncode == 0):
            subprocess.run([str(HERE / "build-image.sh"), IMAGE], check=True, timeout=1100)
        for kind, image in (("dovecot", DOVECOT_IMAGE), ("postfix", POSTFIX_IMAGE)):
            podman("build", "--network=host", "--build-arg", f"DEBIAN_IMAGE={BASE}",
                   "-f", DOCKER / "compose" / f"Dockerfile.{kind}", "-t", image,
                   DOCKER / "compose", timeout=900, check=True)

    def run_container(self, role: str, image: str, *args: str) -> str:
        name = f"postern-compose-{role}-{os.getpid()}"
        podman("rm", "-f", "-t", "0", name, check=False)
        log = self.tmp / f"{role}.log"
        svc = harness.Service(self.tmp)  # for the harness's log dump on failure
        svc.name, svc.logs = role, [log]
        svc.stop = lambda: podman("rm", "-f", "-t", "5", name, check=False)
        self.own_for_test(svc)
        podman("run", "-d", "--name", name, "--log-driver=k8s-file", f"--log-opt=path={log}",
               "-v", f"{self.hosts}:/etc/hosts:ro", *args, image, check=True)
        return name

    def test_compose_stack(self):
        # ./certs as compose.yaml's comment says: certs/<name>/fullchain.pem + privkey.pem,
        # key group-readable by the container user's gid.
        pki = ExamplePki(self.tmp / "pki")
        certs = self.tmp / "certs" / NAME
        certs.mkdir(parents=True)
        shutil.copy(pki.crt("example"), certs / "fullchain.pem")
        shutil.copy(pki.key("example"), certs / "privkey.pem")
        os.chown(certs / "privkey.pem", 0, CONTAINER_UID)
        (certs / "privkey.pem").chmod(0o640)
        self.hosts = self.tmp / "hosts"
        self.hosts.write_text("127.0.0.1 localhost dovecot postfix\n::1 localhost ip6-localhost\n")

        dovecot = self.run_container(
            "dovecot", DOVECOT_IMAGE, "--network", "none",
            "-v", f"{DOCKER / 'compose' / 'dovecot.conf'}:/etc/dovecot/compose.conf:ro",
            "-v", f"{DOCKER / 'compose' / 'users'}:/etc/dovecot/users:ro")
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", dovecot).stdout.strip())
        netns = ["--network", f"container:{dovecot}"]
        self.run_container("postfix", POSTFIX_IMAGE, *netns)
        harness.wait_until(lambda: set(BACKEND_PORTS) <= listening_in(pid), 20,
                           f"backends listening on {BACKEND_PORTS}")
        # postern with compose.yaml's settings: read-only, no capabilities, no new privileges
        self.run_container(
            "postern", IMAGE, *netns, "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-v", f"{DOCKER / 'postern.compose.toml'}:/etc/postern/postern.toml:ro",
            "-v", f"{self.tmp / 'certs'}:/etc/postern/certs:ro")
        harness.wait_until(lambda: set(PORTS.values()) <= listening_in(pid), 20,
                           f"postern listening on {sorted(PORTS.values())}")

        subject = harness.unique("compose")
        code = (f"import sys, json; sys.path[:0] = [{str(HERE)!r}]; import test_compose as t; "
                f"print(json.dumps(t.client({str(pki.ca)!r}, {subject!r})))")
        r = harness.run(["nsenter", "-t", pid, "-n", sys.executable, "-c", code], timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(out["imaps_cn"], NAME)
        self.assertEqual(out["imaps_login"], "OK")
        self.assertTrue(out["smtps_auth_offered"])
        self.assertEqual(out["unauthenticated_relay"], "554", out)
        self.assertTrue(out["delivered"], out)
        self.assertGreaterEqual(out["pop3s_messages"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
