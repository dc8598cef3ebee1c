"""Integration-test harness for postern: real backends, real clients, the real binary.

A package; the test files `from harness import ...` the names below, which live in:
``base`` (settings, waiting, ports, templates, ``run``, ``Daemon``/``Service``), ``pki``,
``servers`` (Dovecot, Postfix, Courier), ``postern`` (the process and its config),
``clients``, ``relay`` (``RecordingRelay``), ``haproxy`` (``Haproxy``) and ``case``
(``IntegrationCase``).

Everything a test needs to run postern hermetically on loopback:

* ``IntegrationCase`` -- unittest base class. One temp dir per test class (``cls.tmp``; a test's
  own subfolder: ``self.workdir_for_test()``). Services registered with ``cls.own(s).start()`` /
  ``self.own_for_test(s).start()`` are stopped in the (class) cleanups even when a test or
  ``setUpClass`` fails, and their logs are dumped to stderr whenever a test fails. Override
  ``start_fixtures(cls)`` (a classmethod) to start the class's servers.
* ``Pki`` -- a CA and ECDSA P-256 certificates made with the ``openssl`` CLI in the temp dir
  (private keys never leave it): ``default`` (mail.default), ``a`` (mail.a.test), ``b``
  (mail.b.test, file holds leaf + CA chain) and ``c`` (wildcard ``*.c.test``). ``Pki.identify()``
  names the certificate a server sent, by SHA-256 fingerprint.
* ``Dovecot``, ``Postfix``, ``Courier`` -- backends started from ``servers/*.in`` templates on
  ports asked from the OS. ``Dovecot(..., starttls=True)`` advertises STARTTLS/STLS on its
  plaintext ports (and LOGINDISABLED when reached through a non-loopback-equal address).
  ``Dovecot(..., haproxy=True)`` adds IMAP and POP3 ports that want a PROXY header first
  (``wait_login()`` finds the login line of a client address). ``Postfix(..., pki=...)`` adds a
  second plaintext port that advertises STARTTLS, ``Postfix(..., proxy=True)`` one that wants
  a PROXY header first (``received()`` reads a delivered mail's Received: headers).
* ``Haproxy`` -- a TCP-mode load balancer in front of postern listeners (``send-proxy-v2``).
* ``Postern`` -- writes a TOML config (certificates with paths relative to the config's folder),
  runs ``postern run --config``, waits until every listener listens, reads its stderr log
  (``session_end()`` parses the one-line session summary), and runs ``postern check``. Its
  listeners have the per-client limits off unless a test sets them (tests connect often from
  one address).
* Clients: ``tls_connect()``, ``ImapSni`` / ``Pop3Sni`` / ``SmtpSni`` (stdlib clients that
  connect to 127.0.0.1 while sending the given SNI), ``ImapStarttls`` / ``Pop3Starttls`` /
  ``SmtpStarttls`` (the same over STARTTLS / STLS; each takes ``source=`` to connect from another
  loopback address, e.g. 127.0.0.2), ``plain_connect()``, ``LineClient`` for raw protocol dialogues
  (``LineClient.starttls()`` upgrades one in place),
  ``run()`` for CLI clients (curl, swaks, openssl), ``sni_sent_by()`` to see which SNI a CLI
  client really puts in its ClientHello.
* ``RecordingRelay`` -- a TCP relay to put between postern and a backend: records, per
  connection, every byte postern sent the backend (and back); ``sync()`` returns once every
  connection opened so far is recorded (to prove none was opened, without sleeping).
* Processes: ``rss_kib()`` and ``cpu_seconds()`` read a running process's memory and CPU time
  from /proc; ``Postern(..., nofile=N)`` starts postern with an open-files limit of N.
* Waiting: ``wait_until()`` polls with a bounded timeout; ``wait_listening()`` reads
  /proc/net/tcp* (no probe connections, which backends would log as aborted sessions);
  ``Service.wait_log()`` polls a fixture's log for a regex (after ``log_size()``, a mark).

The postern binary is ``$POSTERN_BIN`` (default ``<repo>/build/postern``). Set
``POSTERN_KEEP_TMP=1`` to keep the temp dirs for inspection. ``POSTERN_SANITIZED=1`` (set by
the ASan+UBSan pass) makes tests skip memory and speed measurements; ``Postern.stop()`` fails
on any sanitizer report in postern's log, whatever the build.
"""

from .base import (CACHE, HERE, KEEP_TMP, LOCALHOST, PASSWORD, POSTERN_BIN, REPO, SANITIZED,
                   SERVERS, USER,
                   Daemon, Service, WaitTimeout, cpu_seconds, free_port, free_ports, listening_ports,
                   message, render, rss_kib, run, unique, wait_listening, wait_not_listening,
                   wait_until)
from .case import IntegrationCase
from .clients import (ImapSni, ImapStarttls, LineClient, Pop3Sni, Pop3Starttls, SmtpSni,
                      SmtpStarttls, no_verify, parse_client_hello_sni, plain_connect, sni_sent_by,
                      tls_connect)
from .haproxy import Haproxy
from .pki import Pki
from .postern import Postern, parse_fields, require_postern
from .relay import RecordingRelay
from .servers import Courier, Dovecot, Postfix, courier_root

__all__ = [
    "CACHE", "HERE", "KEEP_TMP", "LOCALHOST", "PASSWORD", "POSTERN_BIN", "REPO", "SANITIZED",
    "SERVERS", "USER",
    "Daemon", "Service", "WaitTimeout", "cpu_seconds", "free_port", "free_ports",
    "listening_ports", "message", "render", "rss_kib", "run", "unique", "wait_listening",
    "wait_not_listening", "wait_until",
    "IntegrationCase",
    "ImapSni", "ImapStarttls", "LineClient", "Pop3Sni", "Pop3Starttls", "SmtpSni", "SmtpStarttls",
    "no_verify", "parse_client_hello_sni", "plain_connect", "sni_sent_by", "tls_connect",
    "Haproxy", "Pki", "Postern", "parse_fields", "require_postern", "RecordingRelay",
    "Courier", "Dovecot", "Postfix", "courier_root",
]
