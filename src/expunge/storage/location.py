"""Where a dataset, a store or a release lives: a local path or an fsspec URL, named one way everywhere.

A ``Location`` never holds a credential. Credentials and endpoints come from the environment and the
usual profiles, so a ``Location`` can be printed, logged, written into a manifest or pickled to a Ray
worker without leaking anything; a URL that carries ``user:secret@`` or a query string (a presigned
signature) is refused, and the refusal names the URL with those parts removed.

This module imports nothing beyond the standard library: parsing a path must not cost ``fsspec``'s
import on the CLI's start.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from expunge.errors import ExpungeError

LOCAL = "file"

# Protocol → the canonical name a Location carries (aliases fold into one so two spellings of the
# same place compare equal and share one cached filesystem).
PROTOCOLS: dict[str, str] = {
    "file": LOCAL,
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "abfs": "abfs",
    "abfss": "abfs",
    "hf": "hf",
    "memory": "memory",
}

# ``scheme://``: a letter, then letters, digits, ``+ - .`` (RFC 3986). Windows drive paths (``C:\``)
# have no ``//`` and stay local.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def _userinfo_end(rest: str) -> int:
    """Where the ``user:secret@`` part of ``rest`` (a URL after ``scheme://``) ends, or 0 if none.

    RFC 3986 ends the authority at the first ``/``, ``?`` or ``#``; but people paste raw cloud secrets,
    which often hold ``/`` or ``+``, into URLs. So an ``@`` in the authority, or a ``:`` anywhere before
    the last ``@``, counts as userinfo reaching that last ``@``. Over-redacting a rare key such as
    ``a:b@c`` is the price of never showing part of a secret.
    """
    at = rest.rfind("@")
    if at < 0:
        return 0
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority or ":" in rest[:at]:
        return at + 1
    return 0


def redact(spec: str | Path) -> str:
    """``spec`` with any userinfo (``user:secret@``), query (``?X-Amz-Signature=…``) and fragment removed.

    Works on any string, parseable or not, so that even a refusal can name what it refused.
    """
    text = str(spec)
    m = _SCHEME.match(text)
    if not m:
        return text
    rest = text[m.end() :]
    rest = rest[_userinfo_end(rest) :]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    return f"{m.group(1)}://{rest}"


def is_remote(spec: str | Path) -> bool:
    """Whether ``spec`` names something other than the local filesystem (``file://`` is local)."""
    if isinstance(spec, Path):
        return False
    m = _SCHEME.match(spec)
    return m is not None and PROTOCOLS.get(m.group(1).lower(), "?") != LOCAL


@dataclass(frozen=True)
class Location:
    """A local absolute path (``protocol == "file"``) or a remote ``protocol://bucket/key``.

    ``path`` is what the backend calls the object: an absolute local path, or ``bucket/key`` with no
    leading or trailing slash. Build one with :func:`parse`; the fields are canonical, so equal places
    compare equal.
    """

    protocol: str
    path: str

    @property
    def is_local(self) -> bool:
        return self.protocol == LOCAL

    @property
    def url(self) -> str:
        """The canonical string: the absolute path when local, ``protocol://path`` otherwise."""
        return self.path if self.is_local else f"{self.protocol}://{self.path}"

    def redacted(self) -> str:
        """What to print. A Location holds no credential, so this is :attr:`url`; callers use it
        anyway so that printing goes through one place."""
        return redact(self.url)

    def __str__(self) -> str:
        return self.redacted()

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.is_local else posixpath.basename(self.path)

    @property
    def parent(self) -> Location:
        """The enclosing folder (prefix); the bucket (or ``/``) is its own parent."""
        if self.is_local:
            return Location(LOCAL, os.path.dirname(self.path))
        head = posixpath.dirname(self.path)
        return Location(self.protocol, head or self.path)

    def join(self, *parts: str) -> Location:
        """A location below this one. Parts may hold ``/``; ``.``/``..``/empty segments and absolute
        parts are refused, because joined names often come from a manifest or a listing, and such a
        name must never point outside the folder it was meant to be in."""
        segments: list[str] = []
        for part in parts:
            if part.startswith(("/", "\\")) or (self.is_local and os.path.isabs(part)):
                raise ExpungeError("refusing an absolute name inside a location", self.redacted())
            for seg in part.replace("\\", "/").split("/") if self.is_local else part.split("/"):
                if seg in ("", ".", ".."):
                    raise ExpungeError(
                        "refusing an empty, '.' or '..' name inside a location", self.redacted()
                    )
                segments.append(seg)
        if not segments:
            return self
        if self.is_local:
            return Location(LOCAL, os.path.join(self.path, *segments))
        return Location(self.protocol, "/".join([self.path, *segments]))


def parse(spec: str | Path | Location) -> Location:
    """Read a path or URL the user typed (or a manifest stored).

    Local paths become absolute (like ``formats.paths.walk``); ``file://`` is local. A remote URL must
    use a known protocol and carry no credential or query; either is refused with one line naming the
    redacted URL.
    """
    if isinstance(spec, Location):
        return spec
    if isinstance(spec, Path):
        return Location(LOCAL, os.path.abspath(spec))
    if not spec:
        raise ExpungeError("empty path")
    m = _SCHEME.match(spec)
    if not m:
        return Location(LOCAL, os.path.abspath(spec))
    given = m.group(1).lower()
    protocol = PROTOCOLS.get(given)
    if protocol is None:
        known = ", ".join(sorted({f"{p}://" for p in PROTOCOLS.values()}))
        raise ExpungeError(
            f"unknown storage protocol '{given}://' (expected a local path or {known})", redact(spec)
        )
    rest = spec[m.end() :]
    if protocol == LOCAL:
        # file:///abs/path (or file://relative): the rest is a path, taken literally, '?' included.
        return Location(LOCAL, os.path.abspath(rest or "/"))
    if _userinfo_end(rest):
        raise ExpungeError(
            "a storage URL may not carry credentials; use the environment or a profile", redact(spec)
        )
    if "?" in rest or "#" in rest:
        raise ExpungeError(
            "a storage URL may not carry a query or fragment (presigned URLs are not accepted)", redact(spec)
        )
    path = rest.strip("/")
    if not path:
        raise ExpungeError("a storage URL must name a bucket or container", redact(spec))
    return Location(protocol, path)
