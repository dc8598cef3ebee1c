#!/usr/bin/env python3
"""Writes the seed corpora for the protocol machine fuzz targets (machine_fuzz.hpp format), for
proxy_header_fuzz (raw bytes: PROXY protocol headers as a load balancer sends them), and through
seeds_text.py for client_caps_fuzz, framing_fuzz and config_fuzz, seeds_helper.py for
helper_messages_fuzz. scripts/fuzz adds the inputs a campaign found (named by their SHA-1) next to
these named ones.

Run from anywhere: python3 tests/fuzz/seeds.py. Each machine seed is one realistic dialogue, on
an implicit-TLS or a STARTTLS listener: byte 0 holds the settings (bit 0 tight limits, bit 1
STARTTLS, bit 2 require_tls off, bit 3 max_errors 2, bit 4 the client's identity forwarded, bit 5
an IPv6 one, bit 6 SMTP backend with no extensions learned), then operations (0 = event, 1 = client
bytes, 2 = backend bytes), each followed by an argument byte (event number or length).
"""
import pathlib
import struct

from seeds_helper import HELPER_SEEDS
from seeds_text import CLIENT_CAPS_SEEDS, CONFIG_SEEDS, FRAMING_SEEDS

HERE = pathlib.Path(__file__).resolve().parent
TLS_READY, BACKEND_READY, BACKEND_FAILED, CLIENT_CONNECTED = 0, 1, 2, 3
TIGHT, STARTTLS, PLAINTEXT_OK, FEW_ERRORS, FORWARD, IPV6, NO_EXTENSIONS = 1, 2, 4, 8, 16, 32, 64


def script(steps, flags=0):
    out = bytearray([flags])
    for step in steps:
        if isinstance(step, int):
            out += bytes([0, step])
            continue
        who, data = step
        data = data.encode()
        for i in range(0, len(data), 255):
            chunk = data[i:i + 255]
            out += bytes([1 if who == "c" else 2, len(chunk)]) + chunk
    return bytes(out)


def connected(*steps):
    return [TLS_READY, BACKEND_READY, *steps]


def starttls(before, greeting, *after):
    """A STARTTLS listener: postern's own dialogue, the upgrade, the backend greeting."""
    return [CLIENT_CONNECTED, *before, TLS_READY, BACKEND_READY, ("b", greeting), *after]


# PROXY protocol v2 (HAProxy's doc/proxy-protocol.txt §2.2).
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def v2(command, fam, block):
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack(">H", len(block)) + block


def tcp4(src, dst, sport, dport):
    return bytes(src) + bytes(dst) + struct.pack(">HH", sport, dport)


def ssl(version, cipher, client=0x01):
    return tlv(0x20, bytes([client]) + b"\0\0\0\0" + tlv(0x21, version) + tlv(0x23, cipher))


def crc32c(data):
    """RFC 4960 Appendix B (Castagnoli), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def with_crc(header):
    """`header` ends in a zeroed PP2_TYPE_CRC32C value; fill it in (spec §2.2.3)."""
    return header[:-4] + struct.pack(">I", crc32c(header))


V6_SRC = bytes.fromhex("20010db8000000000000000000000001")
V6_DST = bytes.fromhex("20010db8000000000000000000000002")
ADDR4 = tcp4([192, 0, 2, 1], [198, 51, 100, 10], 56324, 993)
AFTER = b"a1 CAPABILITY\r\n"  # the mail protocol after the header, never consumed

PROXY_HEADER_SEEDS = {
    "v1_tcp4": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + AFTER,
    "v1_tcp6": b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 65535\r\n",
    "v1_unknown": b"PROXY UNKNOWN\r\n",
    "v1_unknown_longest": b"PROXY UNKNOWN " + b":".join([b"ffff"] * 8) + b" "
                          + b":".join([b"ffff"] * 8) + b" 65535 65535\r\n",
    "v1_bad_port": b"PROXY TCP4 192.0.2.1 198.51.100.10 65536 993\r\n",
    "v1_no_crlf": b"PROXY TCP4 192.0.2.1 198.51.100.10 1 2\n",
    "v2_local": v2(0, 0x00, b""),
    "v2_tcp4": v2(1, 0x11, ADDR4) + AFTER,
    "v2_tcp4_tlvs": v2(1, 0x11, ADDR4 + tlv(0x01, b"\x04imap") + tlv(0x02, b"imap.example.com")
                       + ssl(b"TLSv1.3", b"TLS_AES_256_GCM_SHA384") + tlv(0x04, b"\0\0")),
    "v2_tcp6_tlvs": v2(1, 0x21, V6_SRC + V6_DST + struct.pack(">HH", 1, 143)
                       + tlv(0x05, b"unique") + tlv(0xEA, b"vpce-1")
                       + ssl(b"TLSv1.2", b"ECDHE-RSA-AES128-GCM-SHA256", client=0x05)),
    "v2_crc32c": with_crc(v2(1, 0x11, ADDR4 + tlv(0x02, b"mx.test") + tlv(0x03, bytes(4)))),
    "v2_crc32c_zero": v2(1, 0x11, ADDR4 + tlv(0x03, bytes(4))),  # checksum never filled in
    "v2_udp": v2(1, 0x12, ADDR4),
    "v2_unix_local": v2(0, 0x31, bytes(216)),
    "v2_truncated_tlv": v2(1, 0x11, ADDR4 + b"\x02\x00\x10imap"),
    "v2_bad_authority": v2(1, 0x11, ADDR4 + tlv(0x02, b"imap example")),
    "v2_version1": V2_SIG + b"\x11\x11\x00\x0c" + ADDR4,
}


SEEDS = {
    "imap_fuzz": {
        "dovecot_login": connected(
            ("b", "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
                  "STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n"),
            ("c", "a1 CAPABILITY\r\n"),
            ("b", "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n"),
            ("c", "a2 STARTTLS\r\na3 LOGIN {3}\r\n"), ("b", "+ OK\r\n"),
            ("c", "joe secret\r\n"), ("b", "a3 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")),
        "authenticate": connected(
            ("b", "* OK ready\r\n"), ("c", "a1 AUTHENTICATE PLAIN\r\n"), ("b", "+ \r\n"),
            ("c", "AGpvZQBzZWNyZXQ=\r\n"), ("b", "a1 NO failed\r\n"), ("c", "a2 LOGOUT\r\n"),
            ("b", "* BYE bye\r\na2 OK LOGOUT completed\r\n")),
        "literals": connected(
            ("b", "* OK ready\r\n"), ("c", "a1 ID {5+}\r\nhello\r\n"),
            ("b", "* ID (\"name\" {22}\r\n* CAPABILITY STARTTLS)\r\na1 OK\r\n")),
        "failed": [TLS_READY, BACKEND_FAILED],
        "starttls": (STARTTLS, starttls(
            [("c", "a1 CAPABILITY\r\na2 LOGIN joe secret\r\na3 NOOP\r\n"),
             ("c", "a4 STARTTLS\r\na5 LOGIN u p\r\n")],
            "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] {5}\r\nready\r\n",
            ("c", "a6 CAPABILITY\r\n"),
            ("b", "* CAPABILITY IMAP4rev1 STARTTLS\r\na6 OK\r\n"), ("c", "a7 STARTTLS\r\n"),
            ("c", "a8 LOGIN joe secret\r\n"), ("b", "a8 OK [CAPABILITY IMAP4rev1] ok\r\n"))),
        "starttls_plaintext": (STARTTLS | PLAINTEXT_OK, [
            CLIENT_CONNECTED, ("c", "a1 CAPABILITY\r\na2 LOGIN {3}\r\n"), BACKEND_READY,
            ("b", "* OK ready\r\n+ OK\r\n"), ("c", "joe secret\r\na3 STARTTLS\r\n"),
            ("b", "a2 NO failed\r\n")]),
        "starttls_errors": (STARTTLS | FEW_ERRORS, [
            CLIENT_CONNECTED, ("c", "a1 SELECT x\r\n* NOOP\r\n\x16\x03\x01")]),
        "id_spoof": connected(
            ("b", "* OK ready\r\n"),
            ("c", "a1 ID (\"name\" \"x\" \"X-Originating-IP\" \"1.2.3.4\" \"k\\\"\" NIL)\r\n"),
            ("c", "a2 ID (\"x-forward-u\" {3+}\r\nabc)\r\na3 ID NIL\r\n"), ("b", "a1 OK\r\n")),
        "forward": (FORWARD, connected(
            ("c", "a1 LOGIN joe secret\r\n"), ("b", "* OK [CAPABILITY IMAP4rev1 ID] ready\r\n"),
            ("b", "* ID (\"name\" {7}\r\nDovecot)\r\npostern OK Trusted ID completed.\r\n"),
            ("b", "a1 OK Logged in\r\n"))),
        "forward_starttls": (STARTTLS | FORWARD | IPV6, starttls(
            [("c", "a1 STARTTLS\r\n")], "* OK ready\r\n", ("c", "a2 NOOP\r\n"),
            ("b", "postern NO untrusted\r\n"))),
    },
    "pop3_fuzz": {
        "dovecot_login": connected(
            ("b", "+OK Dovecot (Debian) ready.\r\n"), ("c", "CAPA\r\n"),
            ("b", "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nSTLS\r\nUSER\r\n"
                  "SASL PLAIN LOGIN\r\n.\r\n"),
            ("c", "STLS\r\nUSER joe\r\nPASS secret\r\n"), ("b", "+OK\r\n+OK Logged in.\r\n")),
        "auth": connected(
            ("b", "+OK Hello there.\r\n"), ("c", "AUTH PLAIN\r\n"), ("b", "+ \r\n"),
            ("c", "AGpvZQBzZWNyZXQ=\r\n"), ("b", "-ERR [AUTH] failed\r\n"), ("c", "AUTH\r\n"),
            ("b", "+OK\r\nPLAIN\r\n..\r\n.\r\n"), ("c", "QUIT\r\n"), ("b", "+OK bye\r\n")),
        "tight": script([], TIGHT),
        "starttls": (STARTTLS, starttls(
            [("c", "CAPA\r\nUSER joe\r\nSTLS\r\nPASS secret\r\n")], "+OK Dovecot ready.\r\n",
            ("c", "CAPA\r\n"), ("b", "+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
            ("c", "STLS\r\nUSER joe\r\nPASS secret\r\n"), ("b", "+OK\r\n+OK Logged in.\r\n"))),
        "starttls_plaintext": (STARTTLS | PLAINTEXT_OK, [
            CLIENT_CONNECTED, ("c", "CAPA\r\nUSER joe\r\n"), BACKEND_READY,
            ("b", "+OK ready\r\n+OK\r\n"), ("c", "STLS\r\nQUIT\r\n"), ("b", "+OK bye\r\n")]),
        "xclient_spoof": connected(
            ("b", "+OK [XCLIENT] Dovecot ready.\r\n"),
            ("c", "XCLIENT ADDR=1.2.3.4\r\nUSER joe\r\nXOIP 1.2.3.4\r\n"), ("b", "+OK\r\n")),
        "forward": (FORWARD, connected(
            ("c", "USER joe\r\n"), ("b", "+OK [XCLIENT] Dovecot ready. <1.2@x>\r\n"),
            ("b", "+OK Updated\r\n+OK\r\n"))),
        "forward_plaintext": (STARTTLS | PLAINTEXT_OK | FORWARD | IPV6, [
            CLIENT_CONNECTED, ("c", "USER joe\r\n"), BACKEND_READY,
            ("b", "+OK [XCLIENT] ready\r\n-ERR no\r\n")]),
    },
    "smtp_fuzz": {
        "postfix_mx": connected(
            ("b", "220 mx.test ESMTP Postfix (Debian/GNU)\r\n"), ("c", "EHLO client.example\r\n"),
            ("b", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
                  "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
                  "250-CHUNKING\r\n250 SMTPUTF8\r\n"),
            ("c", "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
            ("b", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
            ("c", "Subject: x\r\n\r\n250-STARTTLS\r\n..\r\n.\r\nSTARTTLS\r\nQUIT\r\n"),
            ("b", "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n")),
        "bdat_auth": connected(
            ("b", "220 mx.test ESMTP\r\n"), ("c", "BDAT 10\r\nSTARTTLS\r\nBDAT 0 LAST\r\n"),
            ("b", "250 ok\r\n250 ok\r\n"), ("c", "AUTH LOGIN\r\n"), ("b", "334 VXNlcm5hbWU6\r\n"),
            ("c", "am9l\r\n"), ("b", "235 2.7.0 ok\r\n")),
        "error_greeting": connected(("b", "554-mx.test\r\n554 5.7.1 go away\r\n")),
        "starttls": (STARTTLS, starttls(
            [("c", "EHLO client.example\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nNOOP\r\n"),
             ("c", "STARTTLS\r\nMAIL FROM:<x@y>\r\n")],
            "220-mx.test ESMTP\r\n220 Postfix\r\n", ("c", "EHLO client.example\r\n"),
            ("b", "250-mx.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
            ("c", "STARTTLS\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"), ("b", "235 2.7.0 ok\r\n"))),
        "starttls_mx": (STARTTLS | PLAINTEXT_OK, [
            CLIENT_CONNECTED, ("c", "EHLO sender.example\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"),
            BACKEND_READY, ("b", "220 mx.test ESMTP\r\n250-mx.test\r\n250 PIPELINING\r\n"),
            ("b", "250 ok\r\n250 ok\r\n"), ("c", "STARTTLS\r\nDATA\r\n"),
            ("b", "354 go\r\n"), ("c", "x\r\n.\r\nQUIT\r\n"), ("b", "250 ok\r\n221 bye\r\n")]),
        "starttls_errors": (STARTTLS | FEW_ERRORS | TIGHT, [
            CLIENT_CONNECTED, ("c", "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nEHLO " + "x" * 30)]),
        "xclient_spoof": connected(
            ("b", "220 mx.test ESMTP\r\n"), ("c", "XCLIENT ADDR=1.2.3.4\r\nEHLO c\r\n"),
            ("b", "250-mx.test\r\n250-XCLIENT NAME ADDR\r\n250 XFORWARD NAME\r\n"),
            ("c", "MAIL FROM:<a@x>\r\nXFORWARD ADDR=1.2.3.4\r\n"), ("b", "250 ok\r\n")),
        "forward": (FORWARD, connected(
            ("c", "EHLO c\r\n"), ("b", "220-mx.test ESMTP\r\n220 Postfix\r\n"),
            ("b", "220 mx.test ESMTP Postfix\r\n"), ("b", "250-mx.test\r\n250 XCLIENT ADDR\r\n"))),
        "starttls_bare_backend": (STARTTLS | PLAINTEXT_OK | NO_EXTENSIONS, [
            CLIENT_CONNECTED, ("c", "EHLO x\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\nBDAT 3 LAST\r\n"),
            ("c", "abcQUIT\r\n"), BACKEND_READY,
            ("b", "220 mx.test ESMTP\r\n250-mx.test\r\n250 8BITMIME\r\n")]),
        "forward_mx": (STARTTLS | PLAINTEXT_OK | FORWARD | IPV6, [
            CLIENT_CONNECTED, ("c", "EHLO sender.example\r\nMAIL FROM:<a@x>\r\n"),
            BACKEND_READY, ("b", "220 mx.test ESMTP\r\n550 5.7.0 Error: insufficient "
                                 "authorization\r\n")]),
    },
}

for target, seeds in SEEDS.items():
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, steps in seeds.items():
        if isinstance(steps, tuple):
            data = script(steps[1], steps[0])
        else:
            data = steps if isinstance(steps, bytes) else script(steps)
        (directory / name).write_bytes(data)

RAW_SEEDS = {
    "proxy_header_fuzz": PROXY_HEADER_SEEDS,
    "client_caps_fuzz": CLIENT_CAPS_SEEDS,
    "framing_fuzz": FRAMING_SEEDS,
    "helper_messages_fuzz": HELPER_SEEDS,
    "config_fuzz": {name: text.lstrip().encode() for name, text in CONFIG_SEEDS.items()},
}
for target, seeds in RAW_SEEDS.items():
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / name).write_bytes(data)
