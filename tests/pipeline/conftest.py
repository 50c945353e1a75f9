"""The S3 test server's fixtures for the remote-flow tests (started only when a test asks)."""

from tests.s3server import s3_server, s3_session  # noqa: F401
