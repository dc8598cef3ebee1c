"""The Debian package (packaging/, issue 14): `cpack -G DEB` in the build folder under test makes
postern_<version>_<arch>.deb with the binary, the systemd units, the example config as the
conffile /etc/postern/postern.toml and a man page. `dpkg -i` installs it on this machine (no
running systemd; policy-rc.d blocks service starts): the postern user exists, the unit is
enabled but not started while the config fails `postern check`, the installed binary runs, and
`dpkg --purge` leaves no file of the package behind (the user stays, as Debian does).

Needs root; skipped under ASan (it would package and install the sanitized binary system-wide;
scripts/test leaves it out of that pass too). Only one test at a time may use dpkg: the CMake
entry takes the RESOURCE_LOCK "dpkg".
"""

import os
import shutil
import time
import unittest
from pathlib import Path

from harness import POSTERN_BIN, SANITIZED, IntegrationCase, Pki, Postern, require_postern, run

PACKAGE = "postern"
CONFIG = Path("/etc/postern/postern.toml")
UNIT = Path("/usr/lib/systemd/system/postern.service")
SOCKET_UNIT = Path("/usr/lib/systemd/system/postern.socket")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/postern.service")
NOT_STARTED = "postern is installed but not started"


def installed() -> bool:
    out = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE])
    return out.returncode == 0 and "installed" in out.stdout


def dpkg(*args: str):
    """dpkg with its arguments; waits (bounded) while another dpkg or apt holds the lock."""
    deadline = time.monotonic() + 120
    while True:
        out = run(["dpkg", *args], timeout=120)
        if out.returncode == 0 or "lock" not in out.stderr or time.monotonic() > deadline:
            return out
        time.sleep(1)


def purge() -> None:
    if run(["dpkg-query", "-W", PACKAGE]).returncode == 0:  # installed or config-files
        out = dpkg("--purge", PACKAGE)
        if out.returncode != 0:
            raise AssertionError(f"dpkg --purge {PACKAGE}:\n{out.stdout}{out.stderr}")


class Package(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        if SANITIZED:
            raise unittest.SkipTest("not under ASan: the package would hold the sanitized binary")
        if os.geteuid() != 0:
            raise unittest.SkipTest("dpkg -i needs root")
        require_postern()
        build = Path(os.environ.get("POSTERN_BUILD_DIR") or POSTERN_BIN.parent)
        if not (build / "CPackConfig.cmake").is_file():
            raise AssertionError(f"no CPackConfig.cmake in {build}: the build has no packaging")
        purge()  # what a failed earlier run may have left
        version = run([POSTERN_BIN, "--version"], check=True).stdout.split()[-1]
        cls.version = version
        out = run(["cpack", "-G", "DEB", "-B", cls.tmp / "cpack"], cwd=build, timeout=240,
                  check=True)
        cls.cpack_output = out.stdout
        arch = run(["dpkg", "--print-architecture"], check=True).stdout.strip()
        cls.deb = cls.tmp / "cpack" / f"postern_{version}_{arch}.deb"
        cls.pki = Pki(cls.tmp / "pki")

    def setUp(self):
        super().setUp()
        self.addCleanup(purge)  # whatever a test did, the machine is left without postern

    def good_config(self) -> Path:
        """A config that passes `check`: absolute paths, so it may be copied anywhere."""
        p = Postern(self.workdir_for_test(), self.pki, certificates=[])
        p.extra_certificates = [(self.pki.crt("default"), self.pki.key("default"))]
        p.backend("imap", "127.0.0.1:1")
        p.listener("imaps", "imap", "imap")
        return p.write_config()

    def test_package_file(self):
        self.assertTrue(self.deb.is_file(), f"{self.deb.name} not made:\n{self.cpack_output}\n"
                        f"{sorted(p.name for p in self.deb.parent.iterdir())}")
        listing = run(["dpkg-deb", "-c", self.deb], check=True).stdout
        files = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
        for path in ("/usr/sbin/postern", str(UNIT), str(SOCKET_UNIT), str(CONFIG),
                     "/usr/share/man/man8/postern.8.gz"):
            self.assertIn(path, files, listing)
        self.assertEqual(run(["dpkg-deb", "-I", self.deb, "conffiles"], check=True).stdout.split(),
                         [str(CONFIG)])
        fields = {f: run(["dpkg-deb", "-f", self.deb, f], check=True).stdout.strip()
                  for f in ("Package", "Version", "Section", "Depends", "Maintainer")}
        self.assertEqual(fields["Package"], PACKAGE)
        self.assertEqual(fields["Version"], self.version)
        self.assertEqual(fields["Section"], "net")
        self.assertTrue(fields["Maintainer"], fields)
        depends = {d.split()[0] for d in fields["Depends"].split(", ")}
        # adduser for the postinst; the rest from dpkg-shlibdeps
        for dep in ("adduser", "libc6", "libssl3", "libevent-core-2.1-7"):
            self.assertIn(dep, depends, fields["Depends"])
        info = run(["dpkg-deb", "-I", self.deb], check=True).stdout
        for script in ("postinst", "prerm", "postrm"):
            self.assertRegex(info, rf"\d+ bytes, +\d+ lines +\* +{script} +#!/bin/sh", info)

    def test_install_run_and_purge(self):
        out = dpkg("-i", str(self.deb))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertTrue(installed())
        # The shipped example does not pass check: not started, and the admin is told why.
        self.assertIn(NOT_STARTED, out.stderr)
        self.assertIn("postern check -c /etc/postern/postern.toml", out.stderr)
        files = [Path(f) for f in run(["dpkg", "-L", PACKAGE], check=True).stdout.splitlines()]
        self.assertIn(CONFIG, files)

        with self.subTest("the postern system user and group"):
            user = run(["getent", "passwd", PACKAGE]).stdout.split(":")
            self.assertEqual(user[0], PACKAGE, "no postern user")
            self.assertEqual(user[5], "/nonexistent")
            self.assertLess(int(user[2]), 1000, "not a system user")
            self.assertEqual(run(["getent", "group", PACKAGE]).returncode, 0, "no postern group")

        with self.subTest("enabled, through deb-systemd-helper"):
            if shutil.which("deb-systemd-helper"):
                self.assertTrue(WANTS.is_symlink(), WANTS)

        with self.subTest("--version"):
            mine = run([POSTERN_BIN, "--version"], check=True).stdout
            self.assertEqual(run(["/usr/sbin/postern", "--version"], check=True).stdout, mine)
            self.assertEqual(mine.strip(), f"postern {self.version}")

        good = self.good_config()
        with self.subTest("check on a config that passes"):
            out = run(["/usr/sbin/postern", "check", "-c", good])
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertRegex(out.stdout, r"(?m)postern\.toml: OK")

        with self.subTest("check on the shipped example names what is missing"):
            out = run(["/usr/sbin/postern", "check", "-c", CONFIG])
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertRegex(out.stderr, r"(?m)^/etc/postern/postern\.toml:\d+:\d+: "
                                         r"certificate\[1\]\.cert: cannot read "
                                         r'"/etc/postern/certs/example\.net/fullchain\.pem": '
                                         r"No such file or directory$")
            self.assertIn("certificate[1].key", out.stderr)

        with self.subTest("the man page shows every subcommand"):
            page = run(["zcat", "/usr/share/man/man8/postern.8.gz"], check=True).stdout
            self.assertRegex(page, r"(?m)^\.SH NAME\npostern \\- \S")
            for command in ("run", "check", "probe"):
                self.assertIn(f'.SS "postern {command}"', page)
                self.assertRegex(page, rf"(?m)^Usage: postern {command} \[OPTIONS\]")
            if shutil.which("man"):
                text = run(["man", "-l", "/usr/share/man/man8/postern.8.gz"],
                           env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat"},
                           check=True).stdout
                self.assertIn("--servername", text)

        with self.subTest("systemd-analyze verify"):
            if not shutil.which("systemd-analyze"):
                self.skipTest("no systemd-analyze")
            for unit in (UNIT, SOCKET_UNIT):
                out = run(["systemd-analyze", "verify", unit])
                errors = [l for l in (out.stdout + out.stderr).splitlines() if l.strip()]
                self.assertEqual((out.returncode, errors), (0, []), unit)

        with self.subTest("an upgrade keeps the admin's config, and a passing one may start"):
            mine = good.read_text()
            CONFIG.write_text(mine)
            out = dpkg("-i", str(self.deb))
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertNotIn(NOT_STARTED, out.stderr)
            self.assertEqual(CONFIG.read_text(), mine)

        out = dpkg("--purge", PACKAGE)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertFalse(installed())
        left = [f for f in files if f.is_symlink() or (f.exists() and not f.is_dir())]
        self.assertEqual(left, [], "files of the package left after dpkg --purge")
        self.assertFalse(CONFIG.parent.exists(), "/etc/postern left after dpkg --purge")
        self.assertFalse(Path("/run/postern").exists())
        self.assertFalse(WANTS.is_symlink(), "the unit's enablement left after dpkg --purge")
        self.assertEqual(run(["getent", "passwd", PACKAGE]).returncode, 0,
                         "the postern user stays (Debian convention)")


if __name__ == "__main__":
    unittest.main()
