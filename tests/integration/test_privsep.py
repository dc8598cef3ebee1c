"""Privilege separation (issue 14, point 1): server.user.

Started as root with server.user = "nobody" (group nogroup), in front of certbot's layout with
every folder 0700 root and every key and the config file 0600 root: the process that accepts
connections, and every one of its threads, runs as nobody with no capability; the privileged
helper stays root and holds no socket but its two socketpairs; an IMAPS login with SNI gets the
right certificate; a certbot renewal is picked up without SIGHUP (through the helper's inotify),
SIGHUP reloads, a broken key keeps the old certificate serving. An unknown user is refused
naming file:line:col and the key, and `postern check` as root without server.user warns.
"""

import os
import re
import shutil
import signal
import socket
import stat
import struct
import unittest
from pathlib import Path

from harness import (POSTERN_BIN, SERVERS, Dovecot, ImapSni, IntegrationCase, LineClient, Pki,
                     Postern, run, tls_connect, wait_until)

AS_ROOT = os.geteuid() == 0


def status(pid, task=None) -> dict[str, str]:
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    fields = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def link(target: str, name: Path) -> None:
    """Points symlink `name` at `target` atomically (create aside, rename over), as certbot."""
    tmp = name.with_name(name.name + ".new")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, name)


def socket_inodes(table: str) -> set[str]:
    inodes = set()
    for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
        fields = line.split()
        inodes.add(fields[9] if table.startswith("tcp") else fields[6])
    return inodes


@unittest.skipUnless(AS_ROOT, "privilege separation needs root")
class PrivsepTest(IntegrationCase):
    """One postern as nobody per test, over its own certbot folder."""

    @classmethod
    def start_fixtures(cls):
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()

    def setUp(self):
        work = self.workdir_for_test()
        self.pki = Pki(work / "pki")
        for name in ("a2", "a3"):
            self.pki.add(name, ["mail.a.test"], 40)
        le = work / "letsencrypt"
        self.live = le / "live"
        self.archive = le / "archive" / "mail.a.test"
        self.archive.mkdir(parents=True)
        (self.live / "mail.a.test").mkdir(parents=True)
        self.certbot_issue("a", 1)
        p = self.postern = self.own_for_test(
            Postern(work / "postern", self.pki, certificates=["default", "b"]))
        p.server.update(user="nobody", group="nogroup")
        p.tls["certificates_dir"] = str(self.live)
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        # exec backends run as server.user: with exec_user naming it, or without exec_user
        program = work / "ucspi_env.py"
        shutil.copy2(SERVERS / "ucspi_env.py", program)
        env = {"PYTHONCOERCECLOCALE": "0"}
        p.exec_backend("as_nobody", [program], exec_user="nobody", exec_group="nogroup", exec_env=env)
        p.exec_backend("as_postern", [program], exec_env=env)
        p.listener("exec_nobody", "smtp", "as_nobody")
        p.listener("exec_own", "smtp", "as_postern")
        # and as anybody else (Courier's imaplogin needs root): the helper starts those
        p.exec_backend("as_root", [program, "--linger"], exec_user="root", exec_env=env)
        p.exec_backend("as_daemon_group", [program], exec_group="daemon", exec_env=env)
        p.listener("exec_root", "smtp", "as_root")
        p.listener("exec_daemon_group", "smtp", "as_daemon_group")
        p.write_config()
        # root-only, as certbot and a careful admin leave them
        for folder in (le, le / "live", le / "archive", self.live / "mail.a.test", self.archive,
                       self.pki.dir):
            folder.chmod(0o700)
        for key in list(self.archive.glob("privkey*.pem")) + list(self.pki.dir.glob("*.key")):
            key.chmod(0o600)
        p.config.chmod(0o600)
        p.start()
        m = p.wait_log(r"running as user nobody \(uid (\d+), gid (\d+)\); certificate files are "
                       r"read by a privileged helper \(pid (\d+)\)", 10)
        self.helper = int(m.group(3))

    def certbot_issue(self, short: str, n: int, key_of: str = "", key_mode: int = 0o600) -> None:
        shutil.copy(self.pki.crt(short), self.archive / f"fullchain{n}.pem")
        shutil.copy(self.pki.key(key_of or short), self.archive / f"privkey{n}.pem")
        (self.archive / f"privkey{n}.pem").chmod(key_mode)
        live = self.live / "mail.a.test"
        link(f"../../archive/mail.a.test/fullchain{n}.pem", live / "fullchain.pem")
        link(f"../../archive/mail.a.test/privkey{n}.pem", live / "privkey.pem")

    def served(self, sni: str) -> str:
        with tls_connect(self.postern.port("imap"), sni) as s:
            return self.pki.identify(s.getpeercert(binary_form=True))

    def wait_reload(self, since: int) -> str:
        return self.postern.wait_log(
            r"(certificates reloaded|certificate reload \(.*\) failed)[^\n]*", 15, since=since).group(0)

    def test_only_the_helper_is_root_and_it_holds_no_network_socket(self):
        main = self.postern.daemon.pid
        self.assertTrue(os.stat(self.postern.config).st_mode & stat.S_IRWXO == 0)
        tasks = os.listdir(f"/proc/{main}/task")
        for task in tasks:
            s = status(main, task)
            with self.subTest(task=task, name=s["Name"]):
                for ids in ("Uid", "Gid"):
                    self.assertNotIn("0", s[ids].split(), f"{ids}: {s[ids]}")
                for caps in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                    self.assertEqual(int(s[caps], 16), 0, f"{caps}: {s[caps]}")
        # it is the one listening
        listening = {l.split()[9] for l in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if l.split()[3] == "0A"}
        main_sockets = {os.readlink(f"/proc/{main}/fd/{fd}") for fd in os.listdir(f"/proc/{main}/fd")}
        self.assertTrue(any(f"socket:[{i}]" in main_sockets for i in listening))

        helper = status(self.helper)
        self.assertEqual(helper["PPid"], str(main))
        self.assertEqual(helper["Uid"].split(), ["0"] * 4)
        self.assertEqual(helper["Name"], "postern-helper")
        self.assertEqual(os.listdir(f"/proc/{self.helper}/task"), [str(self.helper)])
        fds = {fd: os.readlink(f"/proc/{self.helper}/fd/{fd}") for fd in os.listdir(f"/proc/{self.helper}/fd")}
        network = socket_inodes("tcp") | socket_inodes("tcp6") | socket_inodes("udp") | socket_inodes("udp6")
        unix = socket_inodes("unix")
        sockets = [t for t in fds.values() if t.startswith("socket:")]
        self.assertEqual(len(sockets), 2, fds)
        for target in sockets:
            inode = target[len("socket:["):-1]
            self.assertIn(inode, unix)
            self.assertNotIn(inode, network)
        self.assertEqual(fds["0"], "/dev/null")
        self.assertEqual(fds["1"], "/dev/null")
        self.assertEqual(fds["2"], str(self.postern.log))
        others = sorted(t for fd, t in fds.items() if fd not in ("0", "1", "2") and not t.startswith("socket:"))
        self.assertEqual(others, ["anon_inode:[signalfd]", "anon_inode:inotify"])

    def test_login_with_sni_gets_the_right_certificate(self):
        port = self.postern.port("imap")
        self.assertEqual(self.served("mail.a.test"), "a")
        self.assertEqual(self.served("mail.b.test"), "b")
        m = ImapSni("mail.a.test", port, ssl_context=self.pki.context())
        self.assertEqual(self.pki.identify(m.sock.getpeercert(binary_form=True)), "a")
        self.assertEqual(m.login("test", "secret")[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()

    def test_exec_backends_run_as_server_user(self):
        for listener in ("exec_nobody", "exec_own"):
            with self.subTest(listener=listener):
                c = LineClient(tls_connect(self.postern.port(listener), "mail.a.test"))
                self.assertTrue(c.readline().startswith("220 ucspi-env"))
                self.assertEqual(c.smtp("IDS"), ["250 uid=65534 gid=65534 groups=65534\r\n"])
                c.smtp("QUIT")
                c.close()

    def test_exec_backends_as_another_user_are_started_and_ended_by_the_helper(self):
        """exec_user = "root" (or another group) under server.user: the helper starts the
        program as that user, with the client's UCSPI variables, and ends it (SIGTERM) when the
        session ends, which the unprivileged process could not."""
        daemon_gid = int(run(["getent", "group", "daemon"]).stdout.split(":")[2])
        c = LineClient(tls_connect(self.postern.port("exec_daemon_group"), "mail.a.test"))
        self.assertTrue(c.readline().startswith("220 ucspi-env"))
        self.assertEqual(c.smtp("IDS"),
                         [f"250 uid=65534 gid={daemon_gid} groups={daemon_gid}\r\n"])
        c.smtp("QUIT")
        c.close()

        c = LineClient(tls_connect(self.postern.port("exec_root"), "mail.a.test"))
        pid = int(re.search(r"pid=(\d+)", c.readline()).group(1))
        self.assertEqual(status(pid)["PPid"], str(self.helper))
        self.assertEqual(c.smtp("IDS"), ["250 uid=0 gid=0 groups=0\r\n"])
        env = dict(l[4:].rstrip("\r\n").split("=", 1) for l in c.smtp("ENV")[:-1])
        self.assertEqual(env["TCPREMOTEIP"], "127.0.0.1")
        self.assertEqual(env["SSL_TLS_SNI"], "mail.a.test")
        self.assertEqual(env["PATH"], "/usr/bin:/bin")
        self.assertNotIn("LD_PRELOAD", env)
        # The client vanishes (RST) and the program lingers: only the session's SIGTERM ends it.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 4, f"program {pid} to end")
        self.assertTrue(os.path.exists(f"/proc/{self.helper}"))

    def test_certbot_renewal_is_seen_without_sighup_and_sighup_reloads(self):
        self.assertEqual(self.served("mail.a.test"), "a")
        since = self.postern.log_size()
        # nobody cannot even list live/: the helper sees it, and the key's mode too
        self.certbot_issue("a2", 2, key_mode=0o640)
        self.assertIn("certificates reloaded (a certificate file changed)", self.wait_reload(since))
        self.assertEqual(self.served("mail.a.test"), "a2")
        self.assertRegex(self.postern.text()[since:],
                         r"live/mail\.a\.test/privkey\.pem: .* accessible to group \(mode 0640\)")

        since = self.postern.log_size()
        self.postern.daemon.send_signal(signal.SIGHUP)
        self.assertIn("certificates reloaded (SIGHUP)", self.wait_reload(since))
        self.assertEqual(self.served("mail.a.test"), "a2")
        self.assertTrue(os.path.exists(f"/proc/{self.helper}"))

    def test_signals_for_postern_leave_the_helper_alone(self):
        """`pkill -USR2 postern` or `systemctl kill` without --kill-whom=main signal the helper
        too: it must survive them, or reloads fail from then on."""
        for number in (signal.SIGUSR2, signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            os.kill(self.helper, number)
        since = self.postern.log_size()
        self.postern.daemon.send_signal(signal.SIGHUP)
        self.assertIn("certificates reloaded (SIGHUP)", self.wait_reload(since))
        self.assertEqual(status(self.helper)["State"][0], "S")

    def test_broken_key_keeps_the_old_certificate(self):
        since = self.postern.log_size()
        self.certbot_issue("a3", 3, key_of="b")  # somebody else's key
        self.assertIn("failed", self.wait_reload(since))
        self.assertRegex(self.postern.text()[since:],
                         r"certificate reload failed: .*privkey\.pem.*does not match")
        self.assertEqual(self.served("mail.a.test"), "a")
        since = self.postern.log_size()
        shutil.copy(self.pki.key("a3"), self.archive / "privkey3.pem")
        self.assertIn("reloaded", self.wait_reload(since))
        self.assertEqual(self.served("mail.a.test"), "a3")


@unittest.skipUnless(AS_ROOT, "the root warning needs root")
class PrivsepConfigTest(IntegrationCase):
    """What the admin is told about server.user before anything runs."""

    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.postern = Postern(cls.tmp / "postern", cls.pki)
        cls.postern.backend("imap", "127.0.0.1:1")
        cls.postern.listener("imap", "imap", "imap")

    def test_unknown_user_is_refused_naming_file_line_and_key(self):
        self.postern.server.update(user="no-such-postern-user")
        try:
            path = self.postern.write_config()
            line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if l.startswith("user ="))
            for command in ("check", "run"):
                with self.subTest(command=command):
                    result = run([POSTERN_BIN, command, "--config", path], timeout=30)
                    self.assertEqual(result.returncode, 1)
                    self.assertIn(f"{path}:{line}:8: server.user: no user named \"no-such-postern-user\"",
                                  result.stderr)
        finally:
            del self.postern.server["user"]

    def test_check_as_root_without_server_user_warns(self):
        result = self.postern.check()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"server\.user is not set.*root")
        self.assertRegex(result.stdout, r"OK with \d+ warning")
        self.postern.server.update(user="nobody")
        try:
            result = self.postern.check()
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertNotIn("server.user is not set", result.stdout)
        finally:
            del self.postern.server["user"]
