"""The tar archive walker under the image-tar formats: one header at a time, every byte accounted for.

The tar is parsed here by hand rather than through :mod:`tarfile` for three reasons:

* **fidelity** -- a cleaned shard must be the source minus the removed samples, so kept members are
  copied as byte ranges (GNU long-name and PAX extended headers, header, data, padding) instead of
  being re-encoded, which would change header bytes (uname, mtime precision, PAX records);
* **speed** -- byte ranges can be handed to the kernel (``copy_file_range``), so a rewrite runs at
  file-copy speed, and a scan reads 512-byte headers and seeks over data;
* **errors** -- a cut or corrupt shard must surface as one :class:`ExpungeError` naming the shard
  and the byte offset. tarfile, past the first member, silently stops at a bad-checksum header or
  a cut at a member boundary, which would lose the rest of the shard's samples without a word;
  here a missing end-of-archive marker counts as truncation.

Sample keys follow webdataset's own rules so they match what training code sees: a member's key is its
name up to the first dot of its basename, with its directory prefix (webdataset's ``base_plus_ext``
regex, quirks included); ``__meta__``-style names are skipped. Names are compared as the paths they
extract to (:func:`normalize_name`: ``./KEY.jpg``, ``/KEY.jpg`` and ``KEY.jpg`` are one name), so a
writer's ``./`` prefix cannot unlink a sample from its row. Samples themselves are in
:mod:`expunge.formats.tar_scan`, rewrites in :mod:`expunge.formats.tar_rewrite`.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from expunge.errors import ExpungeError

BLOCK = 512
RECORD = 10240  # tarfile's, GNU tar's and bsdtar's default record size (blocking factor 20)
_ZERO_BLOCK = bytes(BLOCK)
_OCTAL_DIGITS = b"01234567"
_MAX_EXTENDED = 64 << 20  # GNU long names and PAX headers are read into memory: refuse absurd ones

# webdataset.tariterators.base_plus_ext and its metadata filters, verbatim, so keys agree with it.
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_SKIP_META_RE = re.compile(r"__[^/]*__($|/)")

# Typeflags (as ints: ``header[156]``).
_REGULAR = frozenset((ord("0"), 0, ord("7")))
_NO_DATA = frozenset(ord(c) for c in "123456")  # links, devices, directories, fifos: tarfile skips nothing
_HARDLINK = ord("1")
_LINKS = frozenset((_HARDLINK, ord("2")))
_DIRECTORY = ord("5")
_GNU_LONGNAME = ord("L")
_GNU_LONGLINK = ord("K")
_PAX_LOCAL = frozenset((ord("x"), ord("X")))  # 'X' is Solaris' spelling
_PAX_GLOBAL = ord("g")
_GNU_SPARSE = ord("S")
_EXTENDED = frozenset((_GNU_LONGNAME, _GNU_LONGLINK, _PAX_GLOBAL)) | _PAX_LOCAL  # prefix a member

_POSIX_MAGIC = b"ustar\x00"  # ustar / pax headers; GNU's is b"ustar  \x00" and has no name prefix
_COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


# ------------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------------


def split_key(name: str) -> tuple[str, str] | None:
    """``(key, ext)`` of a member name as webdataset groups it, or None if webdataset skips it.

    ``a.b/000001.seg.png`` gives ``("a.b/000001", "seg.png")``. Names without a dot in the
    basename, and ``__meta__``-style names, belong to no sample.
    """
    if "/" not in name and name.startswith("__") and name.endswith("__"):
        return None
    if _SKIP_META_RE.match(name):
        return None
    m = _KEY_RE.match(name)
    if m is None:
        return None
    return m.group(1), m.group(2)


def normalize_name(name: str) -> str:
    """The path a member extracts to, for comparing names: ``./a//b.jpg`` and ``/a/b.jpg`` are ``a/b.jpg``.

    Empty and ``.`` segments go (extractors drop them, and a leading ``/``); ``..`` stays, so a name
    that climbs out never equals an ordinary one and its sample cannot link to a row.
    """
    if "/" not in name:
        return "" if name == "." else name
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def member_key(name: str) -> tuple[str, str] | None:
    """``(key, ext)`` of a member as expunge groups it: :func:`split_key` of the normalised name."""
    return split_key(normalize_name(name))


# ------------------------------------------------------------------------------------------------
# The scanner
# ------------------------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One archive entry with the byte range it occupies, extended headers included.

    A NamedTuple rather than a frozen dataclass: one is built per member, and this is the hot loop.
    """

    start: int  # first byte: its GNU long-name / PAX headers if any, else its own header
    header: int  # offset of its own header block
    offset_data: int
    size: int  # data bytes (0 for entries that carry none)
    end: int  # first byte after its data padding: where the next entry starts
    name: str
    linkname: str
    kind: str  # "file", "dir", "hardlink", "global" (PAX global header), "other"


def padded(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK * BLOCK


def _cstr(field: bytes) -> bytes:
    return field.partition(b"\x00")[0]


def _octal(text: bytes) -> bool:
    # int(..., 8) alone would also accept '+', '_', '0o' and surrounding whitespace.
    return bool(text) and not text.translate(None, _OCTAL_DIGITS)


def _number(field: bytes) -> int | None:
    """A numeric header field: octal text, or GNU base-256 (first byte 0x80 / 0xff); None if garbled."""
    if field and field[0] in (0x80, 0xFF):
        n = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            n -= 256 ** (len(field) - 1)
        return n
    text = _cstr(field).strip()
    if not text:
        return 0
    if not _octal(text):
        return None
    return int(text, 8)


def _byte_sum(block: bytes) -> int:
    """The sum of a header's 512 bytes, computed in C: this runs once per member.

    Adler-32's low half is 1 + the byte sum modulo 65521, which is exact for 256 bytes or fewer
    (at most 65280), so two halves give the exact sum several times faster than ``sum()``.
    """
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _checksum_ok(buf: bytes) -> bool:
    # Strict about the field's filler too (writers put NUL and/or spaces after the digits), so a
    # damaged byte anywhere in the header is caught, the one after the terminator included.
    tokens = buf[148:156].replace(b"\x00", b" ").split()
    if len(tokens) != 1 or not _octal(tokens[0]):
        return False
    stored = int(tokens[0], 8)
    unsigned = _byte_sum(buf) - sum(buf[148:156]) + 8 * 32  # the checksum field counts as eight spaces
    if stored == unsigned:
        return True
    high = sum(1 for b in buf[:148] if b >= 128) + sum(1 for b in buf[156:] if b >= 128)
    return stored == unsigned - 256 * high  # some old writers summed signed chars


def _parse_pax(data: bytes) -> dict[str, str] | None:
    """``LEN key=value\\n`` records; None if malformed."""
    out: dict[str, str] = {}
    pos = 0
    n = len(data)
    while pos < n and data[pos] != 0:
        space = data.find(b" ", pos, min(n, pos + 21))
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            return None
        length = int(digits)
        if length <= len(digits) + 1 or pos + length > n or data[pos + length - 1] != 0x0A:
            return None
        key, eq, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not eq or not key:
            return None
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class Archive:
    """An open shard; :meth:`entries` walks it header by header.

    Reads are positioned (``pread``) and only ever fetch headers, extended-header payloads and, for
    :func:`iter_images`, the images: member data is skipped, not read and thrown away, so a scan
    costs one small read per member (the kernel's read-ahead keeps it sequential on disk).

    Every byte from offset 0 to :attr:`end_marker` belongs to exactly one entry, in order, so a
    rewrite can be expressed as a list of kept byte ranges.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY)
            self.size = os.fstat(self.fd).st_size
        except OSError as exc:
            raise ExpungeError(f"cannot read shard ({exc.strerror or type(exc).__name__})", path) from None
        self.end_marker = -1  # offset of the end-of-archive zero blocks, once entries() has finished

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, message: str, offset: int) -> ExpungeError:
        return ExpungeError(message, self.path, f"offset {offset}")

    def read(self, offset: int, n: int) -> bytes:
        try:
            data = os.pread(self.fd, n, offset)
        except OSError as exc:
            raise self.fail(f"read error ({exc.strerror or type(exc).__name__})", offset) from None
        if len(data) != n:
            raise self.fail("shard changed size while being read (truncated)", offset + len(data))
        return data

    def _not_a_tar(self, buf: bytes) -> ExpungeError:
        for magic, kind in _COMPRESSED_MAGIC:
            if buf.startswith(magic):
                return self.fail(f"{kind}-compressed tar: decompress shards before cleaning them", 0)
        return self.fail("not a tar archive (no valid header at the start)", 0)

    def entries(self) -> Iterator[Entry]:
        """Walk the archive; raise :class:`ExpungeError` at the first cut, corrupt or unsupported byte."""
        pos = 0
        size = self.size
        start: int | None = None  # where the pending extended headers of the next member began
        pax: dict[str, str] = {}
        longname: str | None = None
        longlink: str | None = None
        while True:
            if pos + BLOCK > size:
                if pos == 0:
                    raise self.fail("empty or too short to be a tar archive", 0)
                what = "a header is cut short" if pos < size else "no end-of-archive marker"
                raise self.fail(f"truncated tar: {what}", pos)
            buf = self.read(pos, BLOCK)
            if buf == _ZERO_BLOCK:
                if start is not None:
                    raise self.fail("extended header not followed by a member", start)
                if pos + 2 * BLOCK > size:
                    raise self.fail("truncated tar: end-of-archive marker cut short", pos)
                if self.read(pos + BLOCK, BLOCK) != _ZERO_BLOCK:
                    raise self.fail("a lone zero block inside the archive (zeroed or corrupt header)", pos)
                self.end_marker = pos
                return
            if not _checksum_ok(buf):
                if pos == 0:
                    raise self._not_a_tar(buf)
                raise self.fail("corrupt tar header (bad checksum)", pos)
            typeflag = buf[156]
            field_size = _number(buf[124:136])
            if field_size is None or field_size < 0:
                raise self.fail("corrupt tar header (bad size field)", pos)
            data = pos + BLOCK

            if typeflag in _EXTENDED:
                end = data + padded(field_size)
                if end > size:
                    raise self.fail("truncated tar: extended header data cut short", pos)
                if field_size > _MAX_EXTENDED:
                    raise self.fail("implausibly large extended header (corrupt?)", pos)
                payload = self.read(data, field_size)
                if typeflag == _PAX_GLOBAL:
                    if _parse_pax(payload) is None:
                        raise self.fail("malformed PAX global header", pos)
                    if start is None:  # standalone: not tied to a member, never dropped
                        yield Entry(pos, pos, data, field_size, end, "", "", "global")
                    pos = end
                    continue
                if start is None:
                    start = pos
                if typeflag in _PAX_LOCAL:
                    records = _parse_pax(payload)
                    if records is None:
                        raise self.fail("malformed PAX extended header", pos)
                    if any(k.startswith("GNU.sparse.") for k in records):
                        raise self.fail("GNU sparse member (unsupported in a webdataset shard)", pos)
                    pax.update(records)
                else:
                    text = _cstr(payload).decode("utf-8", "surrogateescape")
                    if typeflag == _GNU_LONGNAME:
                        longname = text
                    else:
                        longlink = text
                pos = end
                continue

            if typeflag == _GNU_SPARSE:
                raise self.fail("GNU sparse member (unsupported in a webdataset shard)", pos)

            raw = _cstr(buf[0:100])
            if buf[257:263] == _POSIX_MAGIC:
                prefix = _cstr(buf[345:500])
                if prefix:
                    raw = prefix + b"/" + raw
            name = raw.decode("utf-8", "surrogateescape")
            if longname is not None:
                name = longname
            name = pax.get("path", name)
            linkname = ""  # only links need one (decoding every header's would cost time)
            if typeflag in _LINKS:
                linkname = longlink or _cstr(buf[157:257]).decode("utf-8", "surrogateescape")
                linkname = pax.get("linkpath", linkname)

            if "size" in pax:
                text = pax["size"]
                if not (text.isascii() and text.isdigit()):
                    raise self.fail(
                        "malformed PAX extended header (bad size)", pos if start is None else start
                    )
                member_size = int(text)
            else:
                member_size = field_size

            if typeflag == _DIRECTORY or (typeflag == 0 and name.endswith("/")):
                kind, has_data = "dir", False
                name = name.rstrip("/")
            elif typeflag in _REGULAR:
                kind, has_data = "file", True
            elif typeflag == _HARDLINK:
                kind, has_data = "hardlink", False
            else:
                kind, has_data = "other", typeflag not in _NO_DATA
            if not has_data:
                member_size = 0
            end = data + padded(member_size)
            if end > size:
                raise self.fail("truncated tar: member data cut short", pos)
            yield Entry(pos if start is None else start, pos, data, member_size, end, name, linkname, kind)
            start, pax, longname, longlink = None, {}, None, None
            pos = end
