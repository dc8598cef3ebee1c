"""The postern container image, end to end: build it (or reuse it), run it with podman in front of
a real plaintext Dovecot, and log in over implicit-TLS IMAP through it.

    cd tests/docker && python3 -m unittest -v test_image

Needs root (podman, Dovecot) on Debian 12; build-image.sh installs podman & co through
scripts/install-deps and makes the Debian base image from the package mirror when it is missing.
Fixtures come from tests/integration/harness/ (PKI, Dovecot, postern config writer).
Environment:
    POSTERN_IMAGE               image name (default localhost/postern:dev)
    POSTERN_DOCKER_SKIP_BUILD=1 use POSTERN_IMAGE as it is when it exists (no build-image.sh)
    POSTERN_PODMAN_DIR          podman cache/config folder (default /var/tmp/postern-podman)
    POSTERN_KEEP_TMP=1          keep the temp dir (harness)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402  pylint: disable=wrong-import-position

IMAGE = os.environ.get("POSTERN_IMAGE", "localhost/postern:dev")
PODMAN_DIR = Path(os.environ.get("POSTERN_PODMAN_DIR", "/var/tmp/postern-podman"))
CONTAINER_UID = 10001  # docker/Dockerfile: ARG POSTERN_UID


def podman(*args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(PODMAN_DIR / "containers.conf"))
    return harness.run(["podman", *args], env=env, check=check, timeout=timeout)


class ContainerPostern(harness.Postern):
    """harness.Postern, but run from the image with podman (--network=host).

    The harness writes postern.toml into self.dir with certificate paths relative to it, and the
    PKI lives in self.dir/certs; they are mounted read-only the way docker/Dockerfile documents:
    postern.toml as /etc/postern/postern.toml, the PKI folder as /etc/postern/certs. The
    container's output goes to self.log (k8s-file log driver), so the harness's log helpers work
    unchanged.
    """

    name = "postern-container"

    def __init__(self, workdir: Path, pki: harness.Pki, **kw):
        super().__init__(workdir, pki, **kw)
        self.container = f"postern-test-{os.getpid()}-{harness.unique('c')}"
        self.started_in: Optional[float] = None
        self.exit_code: Optional[int] = None

    def start(self, timeout: float = 30.0) -> "ContainerPostern":
        assert self.pki.dir == self.dir / "certs", "the PKI must be in <dir>/certs"
        self.write_config()
        # The container user must read the keys; no user namespace, so uids are the host's.
        for name in self.certificates:
            os.chown(self.pki.key(name), CONTAINER_UID, CONTAINER_UID)
        for d in (self.dir, self.pki.dir):
            d.chmod(0o755)
        t = time.monotonic()
        podman("run", "-d", "--name", self.container, "--network=host",
               "--log-driver=k8s-file", f"--log-opt=path={self.log}",
               "-v", f"{self.config}:/etc/postern/postern.toml:ro",
               "-v", f"{self.pki.dir}:/etc/postern/certs:ro", IMAGE)

        def up():
            if {self.port(n) for n in self.listeners} <= harness.listening_ports():
                return True
            state = podman("inspect", "--format", "{{.State.Status}}", self.container,
                           check=False).stdout.strip()
            if state not in ("created", "configured", "running"):
                raise AssertionError(f"container {self.container} is {state}:\n{self.log_text()}")
            return False
        harness.wait_until(up, timeout, "postern in its container listening")
        self.started_in = time.monotonic() - t
        return self

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        if podman("container", "exists", self.container, check=False).returncode != 0:
            return self.exit_code
        podman("stop", "-t", str(int(timeout)), self.container, check=False, timeout=timeout + 30)
        out = podman("inspect", "--format", "{{.State.ExitCode}}", self.container, check=False)
        self.exit_code = int(out.stdout.strip()) if out.stdout.strip().isdigit() else None
        podman("rm", "-f", self.container, check=False)
        return self.exit_code


@unittest.skipUnless(os.geteuid() == 0, "needs root: podman and Dovecot")
class ContainerImage(harness.IntegrationCase):
    timings: dict[str, float] = {}

    @classmethod
    def start_fixtures(cls):
        t = time.monotonic()
        if not (os.environ.get("POSTERN_DOCKER_SKIP_BUILD") == "1" and shutil.which("podman")
                and podman("image", "exists", IMAGE, check=False).returncode == 0):
            # idempotent: installs podman & co, makes the base image if missing, prints timings
            subprocess.run([str(HERE / "build-image.sh"), IMAGE], check=True, timeout=1100)
        cls.timings["build or reuse"] = time.monotonic() - t
        cls.dovecot = cls.own(harness.Dovecot(cls.tmp / "dovecot")).start()

    def test_implicit_tls_imap_login_through_container(self):
        etc = self.tmp / self._testMethodName / "etc"  # mounted as /etc/postern
        pki = harness.Pki(etc / "certs")
        p = self.own_for_test(ContainerPostern(etc, pki, certificates=["default", "a"]))
        p.backend("imap", self.dovecot.imap_address)
        port = p.listener("imaps", "imap", "imap")
        p.start()
        self.timings["container start"] = p.started_in

        # It runs as the image's unprivileged user.
        self.assertEqual(podman("exec", p.container, "id", "-u").stdout.strip(), str(CONTAINER_UID))

        # SNI mail.a.test: verified chain and name, then a real login at the backend.
        m = harness.ImapSni("mail.a.test", port, ssl_context=pki.context())
        try:
            self.assertEqual(pki.identify(m.sock.getpeercert(binary_form=True)), "a")
            subject = dict(x[0] for x in m.sock.getpeercert()["subject"])
            self.assertEqual(subject["commonName"], "mail.a.test")
            self.assertEqual(m.login(harness.USER, harness.PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
        finally:
            m.logout()
        harness.wait_until(lambda: f"user=<{harness.USER}>" in self.dovecot.log_text(), 5,
                           "the login in Dovecot's log")

        # No SNI: the default certificate.
        with harness.tls_connect(port, None) as tls:
            self.assertEqual(pki.identify(tls.getpeercert(binary_form=True)), "default")

        t = time.monotonic()
        code = p.stop()
        self.timings["container stop"] = time.monotonic() - t
        # `podman stop` sends SIGTERM to postern (PID 1 in the container): it must end by itself,
        # not be SIGKILLed after the grace period (exit code 137).
        self.assertEqual(code, 0, f"postern exit code in the container:\n{p.log_text()}")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        size = ""
        if shutil.which("podman"):
            r = podman("image", "inspect", "--format", "{{.Size}}", IMAGE, check=False)
            if r.stdout.strip().isdigit():
                size = f"; image {IMAGE} {int(r.stdout) / 1e6:.1f} MB"
        print("\ntimings: " + ", ".join(f"{k} {v:.2f} s" for k, v in cls.timings.items()) + size,
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
