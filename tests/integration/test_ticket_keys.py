"""Shared session-ticket keys (issue 15, point 4): tls.ticket_keys_file, HAProxy's
tls-ticket-keys format and rotation rule.

Two postern processes read the same key file (and serve the same certificates) in front of a
real Dovecot: a TLS 1.3 and a TLS 1.2 session made on the first resumes on the second (Python's
ssl and openssl s_client -sess_out/-sess_in), and not on a third with a file of its own. A
rotation (one key appended, seen through inotify) keeps resuming a ticket made with the previous
encryption key, and a second one retires it. A malformed file is refused at startup naming the
file and the line; on reload it is logged and the previous keys stay in use. As root, a key
file 0600 root in a 0700 folder works under server.user (the privileged helper reads it).
HAProxy's own tickets, under the same file, are opened with postern's reading of the layout,
and postern's likewise (48- and 80-byte keys): the same key name, HMAC and cipher.
"""

import base64
import hashlib
import hmac
import os
import re
import subprocess
import shutil
import socket
import ssl
import unittest
from pathlib import Path

from harness import (LOCALHOST, Daemon, Dovecot, IntegrationCase, Pki, Postern, free_port, run,
                     wait_listening)

AS_ROOT = os.geteuid() == 0


def new_key(size: int = 80) -> str:
    """One line of a key file, as `openssl rand -base64 80` writes it."""
    return base64.b64encode(os.urandom(size)).decode() + "\n"


def s_client_ticket(port: int, ca: Path, sess: Path) -> bytes:
    """The TLS 1.2 session ticket a server at port hands openssl s_client, as raw bytes."""
    run(["openssl", "s_client", "-tls1_2", "-connect", f"{LOCALHOST}:{port}", "-servername",
         "mail.a.test", "-CAfile", ca, "-verify_return_error", "-sess_out", sess],
        input=b"", timeout=20)
    text = run(["openssl", "sess_id", "-in", sess, "-noout", "-text"], timeout=10).stdout
    dump = text.split("TLS session ticket:", 1)[1].split("\n\n", 1)[0]
    hexes = re.findall(r"(?m)^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){0,15}[0-9a-f]{2})", dump)
    return bytes.fromhex("".join(h.replace("-", " ") for h in hexes).replace(" ", ""))


def open_ticket(ticket: bytes, key_line: str) -> bytes:
    """A ticket sealed with one key of the file, opened the way HAProxy's struct tls_sess_key
    reads the key (name 16 | AES key | HMAC key): key name, HMAC-SHA256 over name, IV and
    ciphertext, AES-CBC with PKCS#7 padding. Returns the plaintext (a DER SSL_SESSION)."""
    key = base64.b64decode(key_line, validate=True)
    secret = (len(key) - 16) // 2
    name, aes, mac_key = key[:16], key[16:16 + secret], key[16 + secret:]
    assert ticket[:16] == name, "the ticket names another key"
    body, mac = ticket[:-32], ticket[-32:]
    assert hmac.compare_digest(hmac.new(mac_key, body, hashlib.sha256).digest(), mac), "bad HMAC"
    iv, ciphertext = body[16:32], body[32:]
    out = subprocess.run(["openssl", "enc", "-d", f"-aes-{secret * 8}-cbc", "-K", aes.hex(),
                          "-iv", iv.hex()], input=ciphertext, capture_output=True, timeout=10)
    assert out.returncode == 0, f"AES-{secret * 8}-CBC does not open it: {out.stderr!r}"
    return out.stdout


class TicketKeys(IntegrationCase):
    @classmethod
    def start_fixtures(cls):
        cls.pki = Pki(cls.tmp / "pki")
        cls.dovecot = cls.own(Dovecot(cls.tmp / "dovecot")).start()
        keys = cls.tmp / "keys"
        keys.mkdir()
        cls.keyfile = keys / "tickets.key"
        cls.keyfile.write_text("".join(new_key() for _ in range(4)))
        other = cls.tmp / "other-keys"
        other.mkdir()
        (other / "tickets.key").write_text("".join(new_key() for _ in range(3)))
        cls.one = cls.start_postern("one", cls.keyfile)
        cls.two = cls.start_postern("two", cls.keyfile)
        cls.stranger = cls.start_postern("stranger", other / "tickets.key")

    @classmethod
    def start_postern(cls, name: str, keyfile: Path, **server) -> Postern:
        p = cls.own(Postern(cls.tmp / name, cls.pki))
        p.server.update(workers=2, **server)
        p.tls["ticket_keys_file"] = str(keyfile)
        p.backend("imap", cls.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.start()
        p.wait_log(r"session tickets: 3 keys \(AES-256\) from " + str(keyfile), 10)
        return p

    def setUp(self):
        super().setUp()
        self.marks = {p: p.log_size() for p in (self.one, self.two)}

    def connect(self, p: Postern, context: ssl.SSLContext, session=None) -> ssl.SSLSocket:
        raw = socket.create_connection((LOCALHOST, p.port("imap")), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="mail.a.test", session=session)
        # TLS 1.3 tickets arrive after the handshake: reading the greeting processes them.
        greeting = tls.makefile("rb").readline().decode()
        self.assertTrue(greeting.startswith("* OK"), greeting)
        return tls

    def session_on(self, p: Postern, context: ssl.SSLContext):
        tls = self.connect(p, context)
        self.assertFalse(tls.session_reused)
        session = tls.session
        tls.close()
        self.assertTrue(session.has_ticket, "postern sent no session ticket")
        return session

    def resumes(self, p: Postern, context: ssl.SSLContext, session) -> bool:
        tls = self.connect(p, context, session)
        reused = tls.session_reused
        tls.close()
        return reused

    @staticmethod
    def context(version: str) -> ssl.SSLContext:
        context = TicketKeys.pki.context()
        if version == "1.3":
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        else:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context

    def wait_reloaded(self, pattern: str) -> None:
        for p, mark in self.marks.items():
            p.wait_log(pattern, 15, since=mark)
        self.marks = {p: p.log_size() for p in self.marks}

    def rewrite(self, text: str) -> None:
        """Replaces the key file as a rotation job would (write aside, rename over)."""
        tmp = self.keyfile.with_name("tickets.key.new")
        tmp.write_text(text)
        os.replace(tmp, self.keyfile)

    # -- one file, several processes -------------------------------------------------------

    def test_a_session_from_one_process_resumes_on_the_other(self):
        for version in ("1.3", "1.2"):
            with self.subTest(version=version):
                context = self.context(version)
                session = self.session_on(self.one, context)
                self.assertTrue(self.resumes(self.two, context, session),
                                f"TLS {version}: a full handshake on the second process")
                self.assertFalse(self.resumes(self.stranger, context, session),
                                 f"TLS {version}: resumed where the keys are others")
                self.assertTrue(self.resumes(self.one, context, session))

    def test_s_client_sess_out_on_one_sess_in_on_the_other(self):
        sess = self.tmp / "s_client.sess"
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                def s_client(p: Postern, *args) -> str:
                    out = run(["openssl", "s_client", version, "-connect",
                               f"{LOCALHOST}:{p.port('imap')}", "-servername", "mail.a.test",
                               "-CAfile", self.pki.ca, "-verify_return_error",
                               # reads until postern closes after LOGOUT: the TLS 1.3 ticket,
                               # which follows the handshake, is in by then
                               "-ign_eof", *args], input=b"a LOGOUT\r\n", timeout=20)
                    return out.stdout + out.stderr
                text = s_client(self.one, "-sess_out", sess)
                self.assertRegex(text, r"\bNew, TLSv1\.[23]", text)
                text = s_client(self.two, "-sess_in", sess)
                self.assertRegex(text, r"\bReused, TLSv1\.[23]", text)
                text = s_client(self.stranger, "-sess_in", sess)
                self.assertRegex(text, r"\bNew, TLSv1\.[23]", text)

    # -- rotation and reload ------------------------------------------------------------------

    def test_rotation_by_appending_a_key(self):
        context = self.context("1.3")
        before = self.session_on(self.one, context)  # under the current penultimate key
        self.rewrite(self.keyfile.read_text() + new_key())
        self.wait_reloaded(r"session tickets reloaded: 3 keys")
        # That key is now the oldest of the last three: it still decrypts.
        self.assertTrue(self.resumes(self.two, context, before),
                        "a ticket of the previous encryption key did not resume")
        after = self.session_on(self.one, context)
        self.assertTrue(self.resumes(self.two, context, after))
        # One more rotation retires it; the newer ticket lives on.
        self.rewrite(self.keyfile.read_text() + new_key())
        self.wait_reloaded(r"session tickets reloaded: 3 keys")
        self.assertFalse(self.resumes(self.two, context, before),
                         "a ticket of a key no longer in the file resumed")
        self.assertTrue(self.resumes(self.one, context, after))

    def test_a_malformed_file_on_reload_keeps_the_previous_keys(self):
        context = self.context("1.2")
        session = self.session_on(self.one, context)
        good = self.keyfile.read_text()
        lines = good.splitlines(keepends=True)
        before = dict(self.marks)
        try:
            self.rewrite("".join(lines[:-2]) + "not base64 at all\n" + lines[-1])
            line = len(lines) - 1
            self.wait_reloaded(r"certificate reload failed: .*tls\.ticket_keys_file: " +
                               str(self.keyfile) + f":{line}: not a base64 key")
            for p in (self.one, self.two):
                p.wait_log(r"failed .*still serving the previous \d+ certificate\(s\) and "
                           r"session-ticket keys", 5, since=before[p])
                self.assertTrue(self.resumes(p, context, session))
            self.assertNotIn(lines[-1].strip(), self.one.log_text())  # no key in the log
        finally:
            self.rewrite(good)
            self.wait_reloaded(r"session tickets reloaded: 3 keys")
        self.assertTrue(self.resumes(self.two, context, session))

    def test_sighup_reloads_the_keys(self):
        context = self.context("1.3")
        self.one.daemon.send_signal(1)  # SIGHUP
        self.one.wait_log(r"certificates reloaded \(SIGHUP\)", 15, since=self.marks[self.one])
        self.one.wait_log(r"session tickets reloaded: 3 keys \(AES-256\) from " +
                          str(self.keyfile), 5, since=self.marks[self.one])
        session = self.session_on(self.one, context)
        self.assertTrue(self.resumes(self.two, context, session))

    # -- refusals at startup ------------------------------------------------------------------

    def refused(self, name: str, text: str) -> str:
        keyfile = self.workdir_for_test() / f"{name}.key"
        keyfile.write_text(text)
        p = self.own_for_test(Postern(self.workdir_for_test() / name, self.pki))
        p.tls["ticket_keys_file"] = str(keyfile)
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        check = p.check()
        self.assertNotEqual(check.returncode, 0)
        p.start(wait=False)
        self.assertEqual(p.daemon.wait(15), 1, "postern started with a bad ticket key file")
        log = p.log_text()
        self.assertIn(str(keyfile), log)
        self.assertIn(str(keyfile), check.stdout + check.stderr)
        return log

    def test_a_malformed_file_at_startup_is_refused_naming_file_and_line(self):
        cases = {
            "bad_base64": (new_key() + "%%%%\n" + new_key() + new_key(), ":2: not a base64"),
            "mixed": (new_key() + new_key() + new_key(48), ":3: the key is 48 bytes, the first "
                      "was 80"),
            "too_few": (new_key() + new_key(), ": has 2 key(s); at least 3"),
        }
        for name, (text, says) in cases.items():
            with self.subTest(case=name):
                log = self.refused(name, text)
                self.assertIn(says, log)

    def test_an_unreadable_file_at_startup_is_refused(self):
        log = self.refused("missing", "")
        self.assertRegex(log, r"tls\.ticket_keys_file: (cannot read|.*has 0 key)")
        missing = self.workdir_for_test() / "missing.key"
        missing.unlink()
        p = self.own_for_test(Postern(self.workdir_for_test() / "gone", self.pki))
        p.tls["ticket_keys_file"] = str(missing)
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.start(wait=False)
        self.assertEqual(p.daemon.wait(15), 1)
        self.assertRegex(p.log_text(), r"tls\.ticket_keys_file: cannot read \"" +
                         str(missing) + r"\": No such file")

    # -- the same bytes as HAProxy ------------------------------------------------------------

    def test_tickets_are_sealed_as_haproxy_seals_them(self):
        work = self.workdir_for_test()
        pem = work / "haproxy.pem"
        pem.write_text(self.pki.crt("a").read_text() + self.pki.key("a").read_text())
        for size in (80, 48):
            with self.subTest(size=size):
                keyfile = work / f"tickets{size}.key"
                keyfile.write_text("".join(new_key(size) for _ in range(4)))
                penultimate = keyfile.read_text().splitlines()[-2]
                p = self.own_for_test(Postern(work / f"postern{size}", self.pki))
                p.tls["ticket_keys_file"] = str(keyfile)
                p.backend("imap", self.dovecot.imap_address)
                p.listener("imap", "imap", "imap")
                p.start()
                port = p.port("imap")
                hport = self.start_haproxy(work / f"haproxy{size}", pem, keyfile)
                for who, at in (("HAProxy", hport), ("postern", port)):
                    ticket = s_client_ticket(at, self.pki.ca, work / f"{who}{size}.sess")
                    session = open_ticket(ticket, penultimate)
                    self.assertEqual(session[:1], b"\x30", f"{who}: not a DER SSL_SESSION")

    def start_haproxy(self, work: Path, pem: Path, keyfile: Path) -> int:
        work.mkdir(exist_ok=True)
        port = free_port()
        cfg = work / "haproxy.cfg"
        cfg.write_text("\n".join([
            "global", "    maxconn 64", "defaults", "    mode tcp", "    timeout connect 5s",
            "    timeout client 10s", "    timeout server 10s",
            "frontend tls",
            f"    bind {LOCALHOST}:{port} ssl crt {pem} tls-ticket-keys {keyfile}",
            "    default_backend imap", "backend imap",
            f"    server dovecot {self.dovecot.imap_address}", ""]))
        run(["haproxy", "-c", "-f", cfg], check=True)
        daemon = Daemon("haproxy", ["haproxy", "-db", "-f", cfg], work / "haproxy.log").start()
        self.addCleanup(daemon.stop)
        wait_listening([port], 10, daemon.proc, "haproxy")
        return port

    # -- privilege separation -----------------------------------------------------------------

    @unittest.skipUnless(AS_ROOT, "server.user needs root")
    def test_a_root_only_key_file_under_server_user(self):
        secret = self.workdir_for_test() / "secret"
        secret.mkdir(mode=0o700)
        keyfile = secret / "tickets.key"
        shutil.copy(self.keyfile, keyfile)
        keyfile.chmod(0o600)
        p = self.own_for_test(Postern(self.workdir_for_test() / "nobody", self.pki))
        p.server.update(user="nobody", group="nogroup")
        p.tls["ticket_keys_file"] = str(keyfile)
        p.backend("imap", self.dovecot.imap_address)
        p.listener("imap", "imap", "imap")
        p.start()
        p.wait_log(r"running as user nobody", 10)
        p.wait_log(r"session tickets: 3 keys \(AES-256\) from " + str(keyfile), 10)
        context = self.context("1.3")
        session = self.session_on(self.one, context)
        self.assertTrue(self.resumes(p, context, session))
        # Rotated there too: the helper watches the folder and reads it for the process.
        mark = p.log_size()
        with open(keyfile, "a") as f:
            f.write(new_key())
        p.wait_log(r"session tickets reloaded: 3 keys", 15, since=mark)
        self.assertTrue(self.resumes(p, context, session))  # the oldest of three now


if __name__ == "__main__":
    unittest.main()
