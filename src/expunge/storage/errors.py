"""Backend failures → one line naming the (redacted) URL and the kind of failure.

s3fs, botocore, aiohttp and Arrow each raise their own exceptions, whose text may quote an endpoint,
a request id, a signed header or a key. None of that text is shown: the error is classified by type
and code, and the message is one of a few fixed phrases, so no credential and no traceback can reach
the user.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import TYPE_CHECKING

from expunge.errors import ExpungeError

if TYPE_CHECKING:
    from expunge.storage.location import Location

BUCKET_NOT_FOUND = "bucket not found"
NOT_FOUND = "not found"
ACCESS_DENIED = "access denied (check the credentials)"
UNREACHABLE = "cannot reach the storage endpoint"
EXISTS = "already exists"

# botocore error codes → phrase. Codes are stable API; messages are not.
_CODES = {
    "NoSuchBucket": BUCKET_NOT_FOUND,
    "NoSuchKey": NOT_FOUND,
    "404": NOT_FOUND,
    "AccessDenied": ACCESS_DENIED,
    "403": ACCESS_DENIED,
    "Forbidden": ACCESS_DENIED,
    "InvalidAccessKeyId": ACCESS_DENIED,
    "SignatureDoesNotMatch": ACCESS_DENIED,
    "InvalidToken": ACCESS_DENIED,
    "ExpiredToken": ACCESS_DENIED,
    "AllAccessDisabled": ACCESS_DENIED,
    "AccountProblem": ACCESS_DENIED,
    "InvalidBucketName": "invalid bucket name",
    "SlowDown": "the storage service is throttling requests (try again later)",
    "ServiceUnavailable": "the storage service is unavailable (try again later)",
    "InternalError": "the storage service failed (try again later)",
}

# Arrow's S3 layer reports ``AWS Error <CODE> during <Op>``; its codes, upper-case.
_ARROW_CODES = {
    "NO_SUCH_BUCKET": BUCKET_NOT_FOUND,
    "NO_SUCH_KEY": NOT_FOUND,
    "RESOURCE_NOT_FOUND": NOT_FOUND,
    "ACCESS_DENIED": ACCESS_DENIED,
    "INVALID_ACCESS_KEY_ID": ACCESS_DENIED,
    "SIGNATURE_DOES_NOT_MATCH": ACCESS_DENIED,
    "INVALID_CLIENT_TOKEN_ID": ACCESS_DENIED,
    "EXPIRED_TOKEN": ACCESS_DENIED,
    "UNRECOGNIZED_CLIENT": ACCESS_DENIED,
    "NETWORK_CONNECTION": UNREACHABLE,
    "SLOW_DOWN": _CODES["SlowDown"],
    "SERVICE_UNAVAILABLE": _CODES["ServiceUnavailable"],
    "INTERNAL_FAILURE": _CODES["InternalError"],
}

_UNREACHABLE_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
        "ClientConnectorError",
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "FSTimeoutError",
        "TimeoutError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
    }
)
_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _client_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict) and error.get("Code"):
            return str(error["Code"])
    return None


def classify(exc: BaseException) -> str:
    """The fixed phrase for ``exc`` (looking through its cause chain); never the exception's text."""
    for link in _chain(exc):
        code = _client_code(link)
        if code in _CODES:
            return _CODES[code]
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _NO_CREDENTIALS:
            return "no credentials found (set them in the environment or a profile)"
        if names & _UNREACHABLE_NAMES:
            return UNREACHABLE
    # Arrow (and s3fs after translation) raise plain OSError subclasses; their codes sit in the text.
    text = str(exc)
    for code, phrase in _ARROW_CODES.items():
        if f"AWS Error {code}" in text:
            return phrase
    if "curlCode: " in text or "Could not connect" in text:
        return UNREACHABLE
    if "The specified bucket does not exist" in text:
        return BUCKET_NOT_FOUND
    if isinstance(exc, FileNotFoundError):
        return NOT_FOUND
    if isinstance(exc, PermissionError):
        return ACCESS_DENIED
    if isinstance(exc, FileExistsError):
        return EXISTS
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, NotADirectoryError):
        return "is a file, not a folder"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return UNREACHABLE
    return f"storage error ({type(exc).__name__})"


def to_expunge_error(exc: BaseException, where: Location | str) -> ExpungeError:
    """One line: ``URL: phrase``. ``where`` is redacted before it is shown."""
    from expunge.storage.location import Location, redact

    shown = where.redacted() if isinstance(where, Location) else redact(where)
    return ExpungeError(classify(exc), shown)


@contextlib.contextmanager
def storage_errors(where: Location | str) -> Iterator[None]:
    """Turn any backend failure inside the block into a one-line :class:`ExpungeError` naming ``where``.

    ``ExpungeError`` passes through untouched; the original exception is dropped (``from None``) so
    neither its text nor its traceback is printed by a caller that shows the chain.
    """
    try:
        yield
    except ExpungeError:
        raise
    except Exception as exc:
        raise to_expunge_error(exc, where) from None
