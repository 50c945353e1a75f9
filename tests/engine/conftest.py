"""The S3 test server's fixtures for the engine tests that need it."""

from tests.s3server import s3_server, s3_session  # noqa: F401
