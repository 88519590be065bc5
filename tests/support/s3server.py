"""A real S3-compatible server for tests and benchmarks: moto's standalone server.

``moto[server]`` (a dev dependency) serves the S3 REST API over HTTP on a local
port; boto3, s3fs and DataJoint talk to it exactly as to AWS or MinIO.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["S3Server", "running_s3_server"]

ACCESS_KEY = "element-pose-test"
SECRET_KEY = "element-pose-test-secret"


@dataclass
class S3Server:
    """Address and credentials of a running server."""

    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def client(self):
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def env(self, bucket: str, location: str = "element-pose") -> dict[str, str]:
        """The environment that points element-pose's pose store at ``bucket``."""
        return {"ELEMENT_POSE_S3_ENDPOINT": self.endpoint, "ELEMENT_POSE_S3_BUCKET": bucket,
                "ELEMENT_POSE_S3_LOCATION": location,
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys of every object in the bucket below ``prefix``."""
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_s3_server(timeout: float = 60) -> Iterator[S3Server]:
    """Start moto's S3 server on a free local port; stop it on exit."""
    port = _free_port()
    log = tempfile.TemporaryFile(mode="w+")  # request logs: a pipe could fill and block it
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "1"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"moto S3 server did not start: {log.read()[-2000:]}")
            time.sleep(0.2)
        yield S3Server(endpoint=f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
