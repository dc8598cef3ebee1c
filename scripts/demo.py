"""Runs the demo behind ./scripts/demo: a demo PKI, backends on fixed loopback ports, then postern.

Reuses the integration tests' fixtures (tests/integration/harness/) so the demo's Dovecot and
Postfix are the very configurations the tests run against. State lives in .demo/ (git-ignored)
and is made fresh on every run.

The PKI is laid out like a real one, so that `postern check` has nothing to warn about: a root
CA that clients trust, an intermediate CA that signs the server certificates (90 days, as
Let's Encrypt issues them), and one certbot-style folder per certificate:

  .demo/pki/root.crt                  the root CA: what clients trust (-CAfile, --cacert)
  .demo/pki/intermediate.crt          the intermediate CA, signed by the root
  .demo/pki/live/NAME/cert.pem        the leaf alone
  .demo/pki/live/NAME/chain.pem       the intermediate
  .demo/pki/live/NAME/fullchain.pem   leaf + intermediate: what postern serves
  .demo/pki/live/NAME/privkey.pem     the leaf's key (mode 600)

tests/integration/test_demo_config.py builds this PKI with make_pki() and checks conf/demo.toml
against it.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402

DEMO = REPO / ".demo"
CONFIG = REPO / "conf" / "demo.toml"
POSTERN = REPO / "build" / "postern"

# Plaintext backends on loopback; conf/demo.toml points its [[backend]] entries at the PROXY
# protocol ports, so Dovecot and Postfix learn each client's own address from postern.
DOVECOT_PORTS = (11143, 11110)  # IMAP, POP3
DOVECOT_PROXY_PORTS = (11145, 11111)  # the same with haproxy = yes
POSTFIX_PORT = 11025
POSTFIX_PROXY_PORT = 11026  # smtpd_upstream_proxy_protocol = haproxy

# certbot folder name (the first name, without "*.") -> the names the certificate covers
LEAVES = {
    "mail.default": ["mail.default"],
    "mail.a.test": ["mail.a.test"],
    "mail.b.test": ["mail.b.test"],
    "c.test": ["*.c.test"],
}
LEAF_DAYS = 90
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 1825

# openssl x509 -extfile sections. The CA extensions are what a verifier expects of a CA (and
# Python's ssl, OpenSSL's strict mode, insist on the key identifiers).
EXTENSIONS = """\
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $ENV::DEMO_SAN
"""

TRY = """
postern is starting with conf/demo.toml. In another terminal, from {repo}:

  # which certificate each name gets (SNI), verified against the demo root CA
  openssl s_client -connect 127.0.0.1:10993 -servername mail.a.test -CAfile .demo/pki/root.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10993 -servername x.c.test -CAfile .demo/pki/root.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10993 -noservername -CAfile .demo/pki/root.crt -brief </dev/null

  # STARTTLS: postern greets in plaintext itself, upgrades, then connects the backend
  openssl s_client -connect 127.0.0.1:10143 -starttls imap -servername mail.a.test -CAfile .demo/pki/root.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10110 -starttls pop3 -servername mail.b.test -CAfile .demo/pki/root.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10587 -starttls smtp -servername mail.a.test -CAfile .demo/pki/root.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10025 -starttls smtp -servername mx.c.test -CAfile .demo/pki/root.crt -brief </dev/null

  # read the welcome message over IMAPS and POP3S (user test, password secret)
  curl --resolve mail.b.test:10993:127.0.0.1 --cacert .demo/pki/root.crt -u test:secret 'imaps://mail.b.test:10993/INBOX;UID=1'
  curl --resolve mail.a.test:10995:127.0.0.1 --cacert .demo/pki/root.crt -u test:secret 'pop3s://mail.a.test:10995/1'

  # send a message over SMTPS, over submission with STARTTLS, and to the MX in plaintext (an
  # MX must take mail from servers that never start TLS); each lands in
  # .demo/postfix/vmail/a.test/test/new/
  swaks --server 127.0.0.1 --port 10465 --tls-on-connect --tls-sni mail.a.test --from demo@c.test --to test@a.test
  swaks --server 127.0.0.1 --port 10587 --tls --tls-sni mail.a.test --from demo@c.test --to test@a.test
  swaks --server 127.0.0.1 --port 10025 --from demo@c.test --to test@a.test

  # the backends learn each client's own address (a PROXY v2 header from postern): log in
  # from 127.0.0.2 and Dovecot logs rip=127.0.0.2, Postfix's Received: header names it
  curl --interface 127.0.0.2 --resolve mail.a.test:10993:127.0.0.1 --cacert .demo/pki/root.crt -u test:secret 'imaps://mail.a.test:10993/INBOX;UID=1' >/dev/null
  grep 'rip=127.0.0.2' .demo/dovecot/dovecot.log
  swaks --server 127.0.0.1 --port 10025 --local-interface 127.0.0.2 --from demo@c.test --to test@a.test --header 'Subject: from 127.0.0.2'
  grep -l 'from 127.0.0.2' .demo/postfix/vmail/a.test/test/new/* | xargs grep -h -m1 -A1 '^Received:'

  # what postern serves, and what a client sees on a STARTTLS port
  build/postern check --config conf/demo.toml
  build/postern probe 127.0.0.1:10143 --starttls imap --servername mail.a.test --cafile .demo/pki/root.crt

Ctrl-C stops postern, Dovecot and Postfix.
"""


def _openssl(*args, env=None) -> None:
    harness.run(["openssl", *args], check=True, env=env)


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    path.chmod(0o600)


def _issue(pki: Path, subject: str, key: Path, out: Path, days: int, section: str,
           issuer: str = "", san: str = "") -> None:
    """Makes a certificate for key: self-signed when issuer is empty, else signed by the CA
    pki/<issuer>.crt + .key."""
    csr = out.with_suffix(".csr")
    _openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    signer = (["-signkey", key] if not issuer else
              ["-CA", pki / f"{issuer}.crt", "-CAkey", pki / f"{issuer}.key"])
    _openssl("x509", "-req", "-in", csr, *signer, "-days", str(days),
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-extfile", pki / "extensions.cnf", "-extensions", section, "-out", out,
             # openssl expands $ENV::DEMO_SAN in every section as it reads the file
             env={**os.environ, "DEMO_SAN": san or "DNS:unused"})
    csr.unlink()


def make_pki(folder: Path) -> Path:
    """Makes the demo PKI (module docstring) in folder; returns the root CA certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "extensions.cnf").write_text(EXTENSIONS)
    for ca, issuer, days in (("root", "", ROOT_DAYS), ("intermediate", "root", INTERMEDIATE_DAYS)):
        _new_key(folder / f"{ca}.key")
        _issue(folder, f"/CN=postern demo {ca} CA", folder / f"{ca}.key", folder / f"{ca}.crt",
               days, ca, issuer)
    chain = (folder / "intermediate.crt").read_text()
    for name, names in LEAVES.items():
        live = folder / "live" / name
        live.mkdir(parents=True, exist_ok=True)
        _new_key(live / "privkey.pem")
        _issue(folder, f"/CN={names[0]}", live / "privkey.pem", live / "cert.pem", LEAF_DAYS,
               "leaf", "intermediate", ",".join(f"DNS:{n}" for n in names))
        (live / "chain.pem").write_text(chain)
        (live / "fullchain.pem").write_text((live / "cert.pem").read_text() + chain)
    return folder / "root.crt"


def main() -> int:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir()
    DEMO.chmod(0o755)  # Dovecot's and Postfix's unprivileged users read below it
    make_pki(DEMO / "pki")
    dovecot = harness.Dovecot(DEMO / "dovecot", ports=DOVECOT_PORTS, haproxy=True,
                              haproxy_ports=DOVECOT_PROXY_PORTS)
    postfix = harness.Postfix(DEMO / "postfix", port=POSTFIX_PORT, proxy=True,
                              proxy_port=POSTFIX_PROXY_PORT)
    started = []
    try:
        for service in (dovecot, postfix):
            service.start()
            started.append(service)
        dovecot.seed(harness.message("Welcome to the postern demo", to="test@a.test"))
        print(TRY.format(repo=REPO), flush=True)
        postern = subprocess.Popen([str(POSTERN), "run", "--config", str(CONFIG)])
        signal.signal(signal.SIGTERM, lambda *_: postern.send_signal(signal.SIGTERM))
        try:
            return postern.wait()
        except KeyboardInterrupt:
            postern.send_signal(signal.SIGTERM)
            return postern.wait()
    finally:
        for service in reversed(started):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
