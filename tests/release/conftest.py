"""Fixtures for the release tests: the S3 test server and a small signed release built once."""

from tests.release.remote_release import built_release  # noqa: F401
from tests.s3server import s3_server, s3_session  # noqa: F401
