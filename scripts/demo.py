"""Runs the demo behind ./scripts/demo: backends on fixed loopback ports, then postern.

Reuses the integration tests' fixtures (tests/integration/harness.py) so the demo's Dovecot and
Postfix are the very configurations the tests run against. State lives in .demo/ (git-ignored)
and is made fresh on every run.
"""

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

TRY = """
postern is starting with conf/demo.toml. In another terminal, from {repo}:

  # which certificate each name gets (SNI), verified against the demo CA
  openssl s_client -connect 127.0.0.1:10993 -servername mail.a.test -CAfile .demo/pki/ca.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10993 -servername x.c.test -CAfile .demo/pki/ca.crt -brief </dev/null
  openssl s_client -connect 127.0.0.1:10993 -noservername -CAfile .demo/pki/ca.crt -brief </dev/null

  # read the welcome message over IMAPS and POP3S (user test, password secret)
  curl --resolve mail.b.test:10993:127.0.0.1 --cacert .demo/pki/ca.crt -u test:secret 'imaps://mail.b.test:10993/INBOX;UID=1'
  curl --resolve mail.a.test:10995:127.0.0.1 --cacert .demo/pki/ca.crt -u test:secret 'pop3s://mail.a.test:10995/1'

  # send a message over SMTPS; it lands in .demo/postfix/vmail/a.test/test/new/
  swaks --server 127.0.0.1 --port 10465 --tls-on-connect --tls-sni mail.a.test --from demo@c.test --to test@a.test

  # what postern serves
  build/postern check --config conf/demo.toml

Ctrl-C stops postern, Dovecot and Postfix.
"""


def main() -> int:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir()
    DEMO.chmod(0o755)  # Dovecot's and Postfix's unprivileged users read below it
    pki = harness.Pki(DEMO / "pki")
    dovecot = harness.Dovecot(DEMO / "dovecot", ports=(11143, 11110))
    postfix = harness.Postfix(DEMO / "postfix", port=11025)
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
