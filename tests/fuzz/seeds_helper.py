"""Seeds for helper_messages_fuzz (imported by seeds.py): byte 0 picks the chunk size the rest is
fed to the frame decoder in (0: all at once), the rest is frames as postern's main process and its
privileged helper exchange them (proxy/helper_channel.hpp: u32 little-endian length of type and
payload, type byte, payload), with payloads in the byte form of conf/wire.hpp: spawn orders
(proxy/helper_orders.cpp), "pid signal" orders, pids, file snapshots (conf/file_snapshot.cpp).
"""
import struct

SNAPSHOT, FILES, CHANGED, SPAWN, SPAWNED, FAILED, SIGNAL, REPLACE, STARTED = range(1, 10)
UNSET = 0xFFFFFFFF  # an id the spawn order leaves to the helper
SIGTERM, SIGKILL = 15, 9


def u32(value):
    return struct.pack("<I", value)


def text(value):
    data = value if isinstance(value, bytes) else value.encode()
    return u32(len(data)) + data


def strings(items):
    return u32(len(items)) + b"".join(text(item) for item in items)


def frame(kind, payload=b""):
    return u32(len(payload) + 1) + bytes([kind]) + payload


def spawn(argv, user="", group="", uid=UNSET, gid=UNSET, env=(), client=()):
    return (text("postern-spawn-1") + strings(argv) + text(user) + text(group) + u32(uid)
            + u32(gid) + u32(len(env)) + b"".join(text(k) + text(v) for k, v in env)
            + strings(client))


def snapshot(config, files=(), dirs=()):
    """files: (path, flags (1 exists, 2 symlink, 4 bytes), mode, link target, bytes or error);
    dirs: (path, error or None, subfolders)."""
    out = text("postern-file-snapshot-2") + text(config) + u32(len(files))
    for path, flags, mode, target, content in files:
        out += text(path) + u32(flags) + u32(mode) + text(target) + text(content)
    out += u32(len(dirs))
    for path, error, names in dirs:
        out += text(path) + u32(0 if error is None else 8) + text(error or "") + strings(names)
    return out


COURIER = spawn(["/usr/sbin/imaplogin", "/usr/bin/imapd", "Maildir"], user="root", uid=0, gid=0,
                env=[("IMAP_CAPABILITY", "IMAP4rev1")],
                client=["PROTO=TCP", "TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=51234",
                        "TCPLOCALIP=198.51.100.1", "TCPLOCALPORT=993",
                        "TCPLOCALHOST=mail.example", "SSL_PROTOCOL=TLSv1.3",
                        "SSL_CIPHER=TLS_AES_256_GCM_SHA384", "SSL_TLS_SNI=mail.example"])
CERTBOT = snapshot(
    "/etc/postern/postern.toml",
    files=[("/etc/postern/postern.toml", 5, 0o100640, "",
            '[tls]\ncertificates_dir = "/etc/letsencrypt/live"\n'),
           ("/etc/letsencrypt/live/mail.example/fullchain.pem", 7, 0o100644,
            "../../archive/mail.example/fullchain1.pem", "-----BEGIN CERTIFICATE-----\n"),
           ("/etc/letsencrypt/live/mail.example/privkey.pem", 3, 0, "../../archive/gone.pem",
            "No such file or directory"),
           ("/etc/postern/password", 0, 0, "", "Permission denied")],
    dirs=[("/etc/letsencrypt/live", None, ["mail.example", "mx.example"]),
          ("/etc/letsencrypt/live/mx.example", "Permission denied", [])])

HELPER_SEEDS = {
    "snapshot_files": bytes([0]) + frame(SNAPSHOT) + frame(FILES, CERTBOT) + frame(CHANGED),
    "spawn_courier": bytes([7]) + frame(SPAWN, COURIER) + frame(SPAWNED, b"4242"),
    "spawn_cat": bytes([1]) + frame(SPAWN, spawn(["/bin/cat"], client=["PROTO=TCP"]))
                 + frame(FAILED, b"no exec backend of the config runs this program as this user"),
    "spawn_refused": bytes([64]) + frame(SPAWN, spawn(["/bin/sh", "-c", "id"], uid=1000, gid=1000,
                                                      env=[("LD_PRELOAD", "/tmp/x.so")],
                                                      client=["PATH=/tmp"])),
    "signals": bytes([3]) + frame(SIGNAL, b"4242 %d" % SIGTERM) + frame(SIGNAL, b"17 %d" % SIGKILL)
               + frame(SIGNAL, b"1 1"),
    "replace": bytes([5]) + frame(REPLACE, b"imaps:imaps:smtp:ready") + frame(STARTED, b"31337"),
    "empty_snapshot": bytes([2]) + frame(FILES, snapshot("/postern.toml")),
    "big_count": bytes([0]) + frame(SPAWN, text("postern-spawn-1") + u32(4096) + text("/bin/cat")),
    "big_snapshot_count": bytes([0]) + frame(FILES, text("postern-file-snapshot-2") + text("/p")
                                            + u32(0) + u32(1) + text("/d") + u32(0) + text("")
                                            + u32(100000)),
    "bad_type": bytes([0]) + frame(STARTED, b"1") + u32(1) + b"\x0a",
    "cut": bytes([9]) + frame(SPAWNED, b"12") + u32(100) + bytes([SPAWN]) + COURIER[:40],
}
