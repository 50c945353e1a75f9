"""A real S3 API for tests: moto in server mode, in its own process, on a free loopback port.

expunge talks HTTP to it through s3fs and Arrow exactly as it would to AWS; nothing is mocked in
process. One server per test session (it starts in about half a second); each test gets the
environment that points boto and Arrow at it, and fresh filesystem objects.

Use it from any test package::

    from tests.s3server import s3_server, s3_session  # noqa: F401  (pytest finds fixtures by name)

    def test_x(s3_server):
        bucket = s3_server.make_bucket()
        ...

The server keeps its objects in memory: ``stop()`` then ``start()`` (to simulate a network failure
mid-run) gives an empty server on the same port. ``recording()`` captures the HTTP requests the server
receives (method, URL, headers), to check what crossed the wire.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
_names = itertools.count()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class S3Server:
    """Handle on the moto server process. ``endpoint`` is ``http://127.0.0.1:PORT``."""

    workdir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def recording_file(self) -> Path:
        return self.workdir / "moto-recording.jsonl"

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart, empty) the server on the same port and wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_RECORDER_FILEPATH"] = str(self.recording_file)
        log = open(self.workdir / "moto-server.log", "ab")  # noqa: SIM115 (owned by the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer within {timeout} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server: every request fails with a connection error until :meth:`start`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- moto's control API ---------------------------------------------------------------------
    def _api(self, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/{path}",
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body: bytes = resp.read()
            return body

    def client(self, **kwargs: Any) -> Any:
        """A boto3 client on the server, for arranging state (not for the code under test)."""
        import boto3

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": REGION,
        }
        options.update(kwargs)
        service = options.pop("service", "s3")
        return boto3.client(service, **options)

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name when none is given) and return its name."""
        name = name or f"bucket-{os.getpid()}-{next(_names)}"
        self.client().create_bucket(Bucket=name)
        return name

    @contextlib.contextmanager
    def enforce_auth(self) -> Iterator[None]:
        """Inside the block the server checks every request's credentials (IAM), like AWS does; the
        test keys are then unknown, so a request signed with them is refused."""
        self._api("reset-auth", b"0")
        try:
            yield
        finally:
            self._api("reset-auth", b"inf")

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Request]]:
        """Record the requests the server receives inside the block; the list fills when it ends."""
        self._api("recorder/reset-recording", b"")
        self._api("recorder/start-recording", b"")
        got: list[Request] = []
        try:
            yield got
        finally:
            self._api("recorder/stop-recording", b"")
            for line in self.recording_file.read_text().splitlines():
                entry = json.loads(line)
                body = entry.get("body") or ""
                raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
                got.append(Request(entry["method"], entry["url"], dict(entry["headers"]), raw))


@pytest.fixture(scope="session")
def s3_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The one server of the session (use :func:`s3_server`, which also sets the environment)."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"moto's server is not importable ({exc}); pip install 'moto[server]>=5.0'")
    server = S3Server(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_server(s3_session: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The session's server, running, with boto's and Arrow's environment pointing at it.

    Filesystem objects are dropped before and after each test, so a pool that talked to a stopped
    server never reaches the next test. Profiles are unset so a developer's own AWS config cannot leak
    in.
    """
    from expunge.storage import fs as storage_fs

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_session.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    s3_session.start()
    storage_fs.clear_cache()
    try:
        yield s3_session
    finally:
        storage_fs.clear_cache()
        s3_session.start()  # a test that stopped it leaves a running (empty) server behind
