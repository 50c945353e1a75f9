"""The S3 test server's fixtures, for every test in this folder."""

from tests.s3server import s3_server, s3_session  # noqa: F401
