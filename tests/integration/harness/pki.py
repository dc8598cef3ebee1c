"""The test PKI: a CA and server certificates made with the openssl CLI in a temp dir (private
keys never leave it), and naming a served certificate by its SHA-256 fingerprint."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import os
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Optional

from .base import run


class Pki:
    """Test CA + ECDSA P-256 server certificates, generated with the openssl CLI.

    CERTS: short name -> (subjectAltName DNS names, days valid), issued at construction; days
    differ per certificate so that each not-after date is distinct. add() issues more.
    """

    CERTS = {
        "default": (["mail.default"], 30),
        "a": (["mail.a.test"], 31),
        "b": (["mail.b.test"], 32),
        "c": (["*.c.test"], 33),
    }
    CHAIN = {"b"}  # these certificate files carry the CA after the leaf

    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.crt"
        self.certs: dict[str, tuple[list[str], int]] = {}
        self._fingerprints: dict[str, str] = {}
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", self.dir / "ca.key", "-out", self.ca, "-days", "60",
             "-subj", "/CN=postern integration test CA"], check=True)
        (self.dir / "ca.key").chmod(0o600)
        for name, (dns, days) in self.CERTS.items():
            self.add(name, dns, days, chain=name in self.CHAIN)

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def names(self, name: str) -> list[str]:
        return self.certs[name][0]

    def add(self, name: str, dns: list[str], days: int = 30, *, key: str = "ec",
            chain: bool = False, reuse_key: Optional[str] = None) -> None:
        """Issues another server certificate from the CA. key: "ec" (P-256) or "rsa" (2048);
        reuse_key: the short name of a certificate whose key this one keeps (certbot --reuse-key)."""
        d = self.dir
        csr, ext, leaf = d / f"{name}.csr", d / f"{name}.ext", d / f"{name}.leaf.crt"
        keyargs = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec"
                   else ["-newkey", "rsa:2048"])
        if reuse_key is not None:
            shutil.copy(self.key(reuse_key), self.key(name))
            keyargs = ["-new", "-key", self.key(name)]
        keyout = [] if reuse_key is not None else ["-keyout", self.key(name)]
        run(["openssl", "req", *keyargs, "-nodes", *keyout, "-out", csr,
             "-subj", f"/CN={dns[0]}"], check=True)
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns) + "\n"
                       "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", d / "ca.key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", str(days), "-extfile", ext, "-out", leaf], check=True)
        text = leaf.read_text()
        if chain:
            text += self.ca.read_text()
        self.crt(name).write_text(text)
        self.key(name).chmod(0o600)
        self.certs[name] = (list(dns), days)

    def leaf_der(self, name: str) -> bytes:
        pem = self.crt(name).read_text()
        first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
        return ssl.PEM_cert_to_DER_cert(first + "\n")

    def fingerprint(self, name: str) -> str:
        if name not in self._fingerprints:
            self._fingerprints[name] = hashlib.sha256(self.leaf_der(name)).hexdigest()
        return self._fingerprints[name]

    def identify(self, der: Optional[bytes]) -> str:
        """Short name of the certificate whose leaf is der, or 'unknown' / 'none'."""
        if not der:
            return "none"
        fp = hashlib.sha256(der).hexdigest()
        for name in self.certs:
            if self.fingerprint(name) == fp:
                return name
        return "unknown"

    def identify_pem(self, pem: str) -> str:
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
        return self.identify(ssl.PEM_cert_to_DER_cert(m.group(0) + "\n") if m else None)

    def spki_pin(self, name: str) -> str:
        """curl --pinnedpubkey value (sha256//base64 of the SubjectPublicKeyInfo)."""
        pub = run(["openssl", "x509", "-in", self.crt(name), "-noout", "-pubkey"], check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                             stdout=subprocess.PIPE, check=True).stdout
        return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()

    def tlsa_3_1_1(self, name: str) -> str:
        """DANE TLSA 3 1 1 data: SHA-256 of the leaf's DER SubjectPublicKeyInfo, lowercase hex,
        as the openssl command line computes it."""
        pub = run(["openssl", "x509", "-in", self.crt(name), "-noout", "-pubkey"], check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                             stdout=subprocess.PIPE, check=True).stdout
        out = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=der,
                             stdout=subprocess.PIPE, check=True).stdout.decode()
        return out.split()[0]

    def not_after(self, name: str) -> _dt.datetime:
        out = run(["openssl", "x509", "-in", self.crt(name), "-noout", "-enddate"], check=True).stdout
        value = out.strip().split("=", 1)[1]
        return _dt.datetime.strptime(value, "%b %d %H:%M:%S %Y %Z")

    def context(self, verify: bool = True) -> ssl.SSLContext:
        """Client context trusting only the test CA (verify=False: no chain or name check)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            ctx.load_verify_locations(self.ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
