"""IntegrationCase: the unittest base class (per-class temp dir, owned services stopped in
cleanups, daemon logs dumped to stderr when a test fails)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import unittest
from pathlib import Path

from .base import KEEP_TMP, PASSWORD
from .pki import Pki
from .postern import Postern
from .servers import Dovecot, Postfix


class IntegrationCase(unittest.TestCase):
    """Base class: per-class temp dir, owned services stopped in cleanups, logs on failure."""

    tmp: Path
    _owned: list

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = Path(tempfile.mkdtemp(prefix=f"postern-{cls.__name__}-"))
        cls.tmp.chmod(0o755)  # backends run mail processes as nobody
        cls._owned = []
        cls.addClassCleanup(cls._remove_tmp)
        try:
            cls.start_fixtures()
        except BaseException:
            cls._dump_logs(cls._owned, f"{cls.__name__}.setUpClass failed")
            raise

    @classmethod
    def start_fixtures(cls):
        """Override: start the class's services as cls.own(Service(...)).start() (owned before
        starting, so a service that fails half-way is still stopped)."""

    @classmethod
    def start_mail_servers(cls) -> "Postern":
        """The usual stack: cls.pki, a started Dovecot (cls.dovecot) and Postfix (cls.postfix),
        and cls.postern, returned not yet started, for the test to add backends and listeners."""
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        cls.postfix = cls.own(Postfix(cls.tmp / "postfix")).start()
        cls.postern = cls.own(Postern(cls.tmp / "postern", cls.pki))
        return cls.postern

    @classmethod
    def own(cls, service):
        """Registers a service: stopped in the class cleanup, logs dumped on failure."""
        cls._owned.append(service)
        cls.addClassCleanup(service.stop)
        return service

    def setUp(self):
        super().setUp()
        postern = getattr(self, "postern", None)
        if isinstance(postern, Postern):
            postern.test_began = postern.log_size()

    def read_message(self, m, subject: str, item: str = "(BODY.PEEK[])") -> None:
        """On an imaplib connection: log in as the test user, find the one message with this
        subject in INBOX, fetch it, check its Subject line, log out."""
        self.assertEqual(m.login("test@a.test", PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        typ, data = m.search(None, "SUBJECT", subject)
        self.assertEqual(typ, "OK")
        nums = data[0].split()
        self.assertEqual(len(nums), 1, data)
        typ, data = m.fetch(nums[0], item)
        self.assertEqual(typ, "OK")
        self.assertIn(f"Subject: {subject}".encode(), data[0][1])
        m.logout()

    def own_for_test(self, service):
        """Like own(), for a service started by one test (stopped in that test's cleanup)."""
        self._test_owned.append(service)
        self.addCleanup(service.stop)
        return service

    @classmethod
    def _remove_tmp(cls):
        if KEEP_TMP:
            sys.stderr.write(f"\n[harness] kept {cls.tmp}\n")
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def workdir_for_test(self) -> Path:
        d = self.tmp / self._testMethodName
        d.mkdir(exist_ok=True)
        return d

    def run(self, result=None):
        self._test_owned = []
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self._dump_logs(self._owned + self._test_owned, self.id())
        return outcome

    @staticmethod
    def _dump_logs(services, title: str, lines: int = 120):
        out = [f"\n===== logs for {title} ====="]
        for s in services:
            for log in getattr(s, "logs", []):
                try:
                    text = Path(log).read_text(errors="replace").splitlines()
                except FileNotFoundError:
                    continue
                out.append(f"----- {s.name}: {log} (last {min(lines, len(text))} of {len(text)} lines)")
                out.extend(text[-lines:])
        out.append("===== end of logs =====\n")
        sys.stderr.write("\n".join(out) + "\n")
        sys.stderr.flush()
