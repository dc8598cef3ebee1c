"""Seeds for the targets that read text or TLS fields rather than dialogues (imported by seeds.py):

- client_caps_fuzz: byte 0 is the length of the signature_algorithms extension body that follows,
  the rest is the cipher-suite list (two bytes a suite), as real ClientHellos send them;
- framing_fuzz: byte 0 is the line limit less one, byte 1 picks the chunk size, the rest is
  lines from both sides of the three protocols;
- config_fuzz: config files, loaded as <scratch>/postern.toml next to cert.pem, key.pem,
  bundle.p12, password and live/mail.example/{fullchain,privkey}.pem (config_fuzz.cpp).
"""
import struct


def sigalgs(*codes):
    body = b"".join(struct.pack(">H", c) for c in codes)
    return struct.pack(">H", len(body)) + body


def suites(*codes):
    return b"".join(struct.pack(">H", c) for c in codes)


def caps(ext, ciphers):
    return bytes([len(ext)]) + ext + ciphers


# OpenSSL 3's default list; a Windows-style RSA-PSS-first list; TLS 1.2 only with SHA-1.
OPENSSL_SIGALGS = sigalgs(0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x081A, 0x081B, 0x081C,
                          0x0809, 0x080A, 0x080B, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501,
                          0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602)
RSA_SIGALGS = sigalgs(0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0201)
TLS13 = suites(0x1302, 0x1303, 0x1301)
ECDHE_RSA = suites(0xC030, 0xC02F, 0xCCA8, 0x009F, 0x009E, 0x00FF)
ECDHE_ECDSA = suites(0xC02C, 0xC02B, 0xCCA9, 0xC024, 0xC023, 0xC00A, 0xC009)

CLIENT_CAPS_SEEDS = {
    "openssl3": caps(OPENSSL_SIGALGS, TLS13 + ECDHE_ECDSA + ECDHE_RSA),
    "rsa_only": caps(RSA_SIGALGS, TLS13 + ECDHE_RSA),
    "tls12_ecdsa_sha1": caps(sigalgs(0x0203, 0x0201), ECDHE_ECDSA[:2] + ECDHE_RSA),
    "no_sigalgs": caps(b"", suites(0xC02B, 0x002F)),
    "no_sigalgs_rsa": caps(b"", ECDHE_RSA),
    "bad_length": caps(b"\x00\x05\x04\x03\x05\x03", TLS13),
    "odd_suites": caps(sigalgs(0x0403), suites(0x002F) + b"\x13"),
}


def lines(max_line, step, *text):
    return bytes([max_line - 1, step]) + "".join(text).encode()


FRAMING_SEEDS = {
    "smtp_replies": lines(
        256, 0, "220 mx.test ESMTP Postfix\r\n", "250-mx.test\r\n250-PIPELINING\r\n",
        "250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=LOGIN\r\n",
        "250-XCLIENT NAME ADDR\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n", "221\r\n", "554-\r\n",
        "2x0 no\r\n", "250+no\r\n"),
    "imap_lines": lines(
        200, 3, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] ready\r\n",
        "* CAPABILITY IMAP4rev1 SASL-IR STARTTLS ID\r\n", "a1 OK [CAPABILITY IMAP4rev1] done\r\n",
        "a2 LOGIN {3}\r\n", "a3 APPEND INBOX {12+}\r\n", "* 1 FETCH (BODY[] {4294967296}\r\n",
        "a4 NO Try later {40}\r\n", "* CAPABILITY  STARTTLS\n", "a5 BAD [CAPABILITY]\r\n"),
    "imap_id": lines(
        256, 1, 'a1 ID ("name" "Thunderbird" "x-originating-ip" "1.2.3.4")\r\n',
        'a2 ID ("X-Forward-User" "joe")\n', "a3 ID NIL\r\n", 'a4 id  ( "k\\"" NIL "x-session-id" "s" )\r\n',
        'a5 ID ("x-proxy-ttl" "5" "x-multiplex" "0" "version" "1")\r\n', "a6 ID (\r\n"),
    "pop3_lines": lines(
        64, 2, "+OK [XCLIENT] Dovecot ready.\r\n", "+OK [XCLIENT]\r\n", "+OK\r\n", "STLS\r\n",
        "SASL PLAIN LOGIN\r\n", ".\r\n", "-ERR [SYS/TEMP] busy\r\n"),
    "tight": lines(8, 15, "a NOOP\r\n", "b NOOP and more\r\n", "c\n"),
    "count": lines(32, 0, "0004294967295"),
}


SERVED = """
[tls]
default_certificate = "mail.example"
[[certificate]]
cert = "cert.pem"
key = "key.pem"
"""

CONFIG_SEEDS = {
    "minimal": SERVED + """
[[backend]]
name = "imap"
address = "127.0.0.1:143"
[[listener]]
listen = "0.0.0.0:993"
protocol = "imap"
backend = "imap"
""",
    "every_listener": """
[server]
log_level = "debug"
workers = 0
hostname = "mx.example.net"
[tls]
min_version = "1.3"
default_certificate = "mail.example"
strict_sni = true
expiry_warning_days = 0
certificates_dir = "live"
[[certificate]]
pkcs12 = "bundle.p12"
password_file = "password"
[[backend]]
name = "imap"
address = ["127.0.0.1:143", "[::1]:143", "imap.internal:1143"]
send_proxy = "v2"
connect_timeout = "1500ms"
[[backend]]
name = "smtp"
address = "127.0.0.1:25"
xclient = true
connect_timeout = 5
[[backend]]
name = "pop3"
exec = ["/bin/cat", "-u"]
exec_user = "nobody"
exec_group = "nogroup"
exec_env = { LANG = "C", HOME = "/var/empty" }
[[listener]]
listen = "[::]:993"
protocol = "imap"
backend = "imap"
routes = { "mail.alpha.example" = "imap", "*.beta.example" = "imap" }
accept_proxy = true
trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]
[[listener]]
listen = "0.0.0.0:25"
protocol = "smtp"
tls = "starttls"
backend = "smtp"
require_tls = false
plaintext_timeout = "20s"
max_errors = 3
hostname = "mx.example.net"
[[listener]]
listen = "127.0.0.1:587"
protocol = "smtp"
tls = "starttls"
submission = true
backend = "smtp"
handshake_timeout = "2m"
idle_timeout = "1h"
[[listener]]
listen = "127.0.0.1:110"
protocol = "pop3"
tls = "starttls"
backend = "pop3"
""",
    "errors": """
[server]
log_level = "loud"
workers = 9999
colour = true
[tls]
min_version = "1.1"
[[certificate]]
cert = "missing.pem"
password_file = "password"
[[backend]]
name = "imap"
address = ["127.0.0.1:143", "127.0.0.1:143", "nohost"]
send_proxy = "v2"
xclient = true
[[backend]]
name = "imap"
exec = ["cat"]
address = "127.0.0.1:1"
[[listener]]
listen = "0.0.0.0:993"
protocol = "imap4"
tls = "implicit"
require_tls = false
plaintext_timeout = "0s"
backend = "imapx"
routes = { "not a name" = "imap", "MAIL.example." = "x", "mail.example" = "imap" }
trusted_proxies = "10.0.0.0/33"
[[listener]]
listen = "[::]:993"
protocol = "pop3"
submission = true
max_errors = 0
""",
    "limits": SERVED + """
[server]
max_sessions = 10000
[[backend]]
name = "smtp"
address = "127.0.0.1:25"
[[listener]]
listen = "0.0.0.0:25"
protocol = "smtp"
tls = "starttls"
backend = "smtp"
max_sessions_per_client = 50
max_new_per_client = "30/10s"
""",
    "syntax_error": SERVED + '[[listener]]\nlisten = "0.0.0.0:993\nprotocol = imap\n',
    "types": 'server = 1\ntls = []\nlistener = { listen = 993 }\n[[backend]]\nname = ""\n'
             'address = []\n',
}
