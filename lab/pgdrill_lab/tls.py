"""A throwaway certificate authority and a server certificate for 127.0.0.1, made with openssl.

pgBackRest speaks S3 over HTTPS only: the lab's S3 server serves HTTPS with a certificate this CA
signs, and clients trust the CA file (never "verify = no")."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NamedTuple, Sequence


class Certificates(NamedTuple):
    ca_file: str
    cert_file: str
    key_file: str


def _openssl(*args: str, cwd: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def make_certificates(directory: str, days: int = 2, dns_names: Sequence[str] = ()) -> Certificates:
    """A CA and a certificate for IP 127.0.0.1 and localhost (and ``dns_names``, such as a test
    host's name), signed by it, in ``directory``."""
    if not shutil.which("openssl"):
        raise RuntimeError("openssl is not installed: apt-get install openssl (./run setup does)")
    # Readable by all (the CA file is public; a cluster's OS user must read it), the keys 0600.
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    subj = "/CN=pgdrill lab CA"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days), "-subj", subj, cwd=directory)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=directory)
    # The address also as a DNS name: pgBackRest (2.45) matches the host it connects to against the
    # certificate's DNS names only.
    with open(os.path.join(directory, "san.ext"), "w", encoding="utf-8") as handle:
        handle.write(
            f"subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost{''.join(',DNS:' + name for name in dns_names)}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", str(days), "-extfile", "san.ext", cwd=directory,
    )  # fmt: skip
    for name in ("ca.crt", "server.crt"):
        os.chmod(os.path.join(directory, name), 0o644)
    for name in ("ca.key", "server.key"):
        os.chmod(os.path.join(directory, name), 0o600)
    return Certificates(os.path.join(directory, "ca.crt"), os.path.join(directory, "server.crt"), os.path.join(directory, "server.key"))
