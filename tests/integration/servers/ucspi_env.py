#!/usr/bin/python3
"""A minimal UCSPI server for postern's exec-backend tests, run by postern once per session
with the session on fds 0 and 1 (as tcpserver runs qmail-smtpd). It speaks just enough SMTP
for postern's SMTP machine to relay it:

    220 ucspi-env pid=<pid> ESMTP           greeting (the pid lets a test watch the process)
    EHLO/HELO x      -> 250 lines
    ENV              -> 250-NAME=value for each variable, then 250 end
    IDS              -> 250 uid=<u> gid=<g> groups=<g,...>
    STDERR <n>       -> writes n lines "stderr line <i>" to fd 2, then 250 ok
    QUIT             -> 221 bye, exit 0
    anything else    -> 500 unknown

Options:
    --exit-before-greeting   write one stderr line and exit 3 before saying anything
    --ignore-term            ignore SIGTERM and keep running after the session's EOF, until
                             SIGKILL (postern's kill-after path)
    --linger                 keep running after the session's EOF until a signal ends it
                             (postern's SIGTERM at the session's end)
"""

import os
import signal
import sys
import time


def reply(out, text: str) -> None:
    out.write(text.encode() + b"\r\n")
    out.flush()


def main() -> int:
    args = sys.argv[1:]
    if "--exit-before-greeting" in args:
        sys.stderr.write("ucspi-env: refusing to start (test)\n")
        return 3
    ignore_term = "--ignore-term" in args
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inp = os.fdopen(0, "rb", buffering=0)
    out = os.fdopen(1, "wb")
    sys.stderr.write(f"ucspi-env: session from {os.environ.get('TCPREMOTEIP')}\n")
    sys.stderr.flush()
    reply(out, f"220 ucspi-env pid={os.getpid()} ESMTP")
    line = b""
    while True:
        byte = inp.read(1)
        if not byte:
            break
        line += byte
        if not line.endswith(b"\n"):
            continue
        words = line.decode(errors="replace").strip().split()
        line = b""
        verb = words[0].upper() if words else ""
        if verb in ("EHLO", "HELO"):
            reply(out, "250-ucspi-env\r\n250-X-UCSPI-ENV\r\n250 8BITMIME")
        elif verb == "ENV":
            for name in sorted(os.environ):
                reply(out, f"250-{name}={os.environ[name]}")
            reply(out, "250 end")
        elif verb == "IDS":
            groups = ",".join(str(g) for g in sorted(os.getgroups()))
            reply(out, f"250 uid={os.getuid()} gid={os.getgid()} groups={groups}")
        elif verb == "STDERR":
            for i in range(int(words[1])):
                sys.stderr.write(f"stderr line {i}\n")
            sys.stderr.flush()
            reply(out, "250 ok")
        elif verb == "QUIT":
            reply(out, "221 bye")
            return 0
        else:
            reply(out, "500 unknown")
    if ignore_term or "--linger" in args:
        while True:  # only a signal ends this (SIGKILL alone with --ignore-term)
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
