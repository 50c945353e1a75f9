"""img2dataset / webdataset tar shards: discovery, streaming member scans, and faithful rewrites.

A shard is ``00000.tar`` holding ``KEY.jpg``, ``KEY.txt``, ``KEY.json``... per sample, beside
``00000.parquet`` (one row per attempted URL, with a ``key`` column) and ``00000_stats.json``.

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

Samples follow webdataset's own rules so keys match what training code sees: only regular files make
samples; a member's key is its name up to the first dot of its basename, with its directory prefix
(webdataset's ``base_plus_ext`` regex, quirks included); ``__meta__``-style names are skipped.
Unlike webdataset, a key that recurs non-consecutively is one sample here (its members are removed
together), listed at its first appearance.

Names are compared as the paths they extract to (:func:`normalize_name`: ``./KEY.jpg``, ``/KEY.jpg``
and ``KEY.jpg`` are one name), so a writer's ``./`` prefix cannot unlink a sample from its row. For
checking, every data-carrying entry counts (:func:`scan`): every member of a sample whatever its
extension, an extension-less file named like a sample, and data outside every sample, so nothing the
release would carry goes unhashed. A name that occurs twice (the later one would overwrite the earlier
on extraction) or that is not valid UTF-8 makes the shard refused.
"""

from __future__ import annotations

import errno
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.atomic import atomic_path, read_json, write_json
from expunge.errors import ExpungeError
from expunge.formats import parquet
from expunge.formats.paths import walk

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif", "heic", "heif", "jxl", "jp2")
#: Last extension parts (lower case) of members that hold text or structured data, not pictures. They are
#: still hashed and tried as images (a JPEG saved as ``KEY.txt`` is still found), but one that does not
#: decode is expected and not quarantined. Any other member that does not decode is quarantined: an
#: unknown extension (``.bak``, ``.heic`` without a decoder, none at all) may hold an image. Binary data
#: formats (``.npy``, ``.pth``...) are deliberately absent: they can hold pixels.
COMPANION_EXTS = frozenset(
    {
        "txt",
        "text",
        "caption",
        "json",
        "jsonl",
        "cls",
        "cls2",
        "id",
        "index",
        "inx",
        "csv",
        "tsv",
        "xml",
        "html",
        "htm",
        "yaml",
        "yml",
        "md",
        "rst",
        "parquet",
    }
)
#: Extension-less names (lower case) of documentation files: companions too, wherever they appear.
COMPANION_NAMES = frozenset(("license", "licence", "readme", "copying", "notice", "authors", "changelog"))
SUFFIXES = (".tar",)

BLOCK = 512
RECORD = 10240  # tarfile's, GNU tar's and bsdtar's default record size (blocking factor 20)
_ZERO_BLOCK = bytes(BLOCK)
_OCTAL_DIGITS = b"01234567"
_COPY_CHUNK = 1 << 22
_MAX_EXTENDED = 64 << 20  # GNU long names and PAX headers are read into memory: refuse absurd ones
_MAX_RECORD = 1 << 20  # largest record size we infer from a source's end-of-archive padding

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

# copy_file_range refusals that mean "not here" (cross-device, old kernel, filesystem) -> plain copy.
_NO_KERNEL_COPY = frozenset((errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM))

_POSIX_MAGIC = b"ustar\x00"  # ustar / pax headers; GNU's is b"ustar  \x00" and has no name prefix
_COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


# ------------------------------------------------------------------------------------------------
# Discovery
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarShard:
    name: str  # path relative to the dataset root, '/'-separated: the shard's identity
    path: str  # absolute path
    parquet: str | None  # companion ``00000.parquet`` if present
    stats: str | None  # companion ``00000_stats.json`` if present


def _is_tar(filename: str) -> bool:
    return filename.endswith(SUFFIXES) and not os.path.basename(filename).startswith((".", "_"))


def _companions(path: str) -> tuple[str | None, str | None]:
    stem = os.path.splitext(path)[0]
    pq_path = stem + ".parquet"
    stats_path = stem + "_stats.json"
    return (pq_path if os.path.isfile(pq_path) else None, stats_path if os.path.isfile(stats_path) else None)


def discover_tars(specs: Sequence[str]) -> tuple[str, list[TarShard]]:
    """Resolve directories, globs and files into an ordered tar-shard list and their common root.

    Mirrors :func:`expunge.formats.parquet.discover` so both formats name shards the same way:
    directories are walked recursively in sorted order, hidden directories and ``.``/``_`` files
    skipped; globs and directories only contribute ``*.tar``; a file named explicitly is taken as is.
    """
    root, absolute = walk(specs, _is_tar, "tar")
    shards = [TarShard(os.path.relpath(p, root).replace(os.sep, "/"), p, *_companions(p)) for p in absolute]
    return root, shards


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


def is_companion(ext: str) -> bool:
    """A member extension that marks text or structured data (:data:`COMPANION_EXTS`), or a
    documentation file's whole name (:data:`COMPANION_NAMES`, as :func:`scan` gives it for ``README``)."""
    return ext.rpartition(".")[2].lower() in COMPANION_EXTS or ext.lower() in COMPANION_NAMES


def is_image_ext(ext: str) -> bool:
    return ext.rpartition(".")[2].lower() in IMAGE_EXTS


# ------------------------------------------------------------------------------------------------
# The scanner
# ------------------------------------------------------------------------------------------------


class _Entry(NamedTuple):
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


def _pad(n: int) -> int:
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


class _Tar:
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

    def __enter__(self) -> _Tar:
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

    def entries(self) -> Iterator[_Entry]:
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
                end = data + _pad(field_size)
                if end > size:
                    raise self.fail("truncated tar: extended header data cut short", pos)
                if field_size > _MAX_EXTENDED:
                    raise self.fail("implausibly large extended header (corrupt?)", pos)
                payload = self.read(data, field_size)
                if typeflag == _PAX_GLOBAL:
                    if _parse_pax(payload) is None:
                        raise self.fail("malformed PAX global header", pos)
                    if start is None:  # standalone: not tied to a member, never dropped
                        yield _Entry(pos, pos, data, field_size, end, "", "", "global")
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
            end = data + _pad(member_size)
            if end > size:
                raise self.fail("truncated tar: member data cut short", pos)
            yield _Entry(pos if start is None else start, pos, data, member_size, end, name, linkname, kind)
            start, pax, longname, longlink = None, {}, None, None
            pos = end


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    key: str
    ext: str  # everything after the first dot of the basename, case as stored ("seg.png")
    offset_data: int  # offset of the member's data in the tar
    size: int


class DataMember(NamedTuple):
    """One data-carrying entry, as :func:`scan` assigns it: to a sample, or to none (``sample == -1``)."""

    sample: int  # index into :attr:`Layout.keys`, -1 for data outside every sample
    key: str | None  # the sample's key (None outside every sample)
    ext: str  # what the member is classified by: its extension ("" if none), or README's whole name
    offset_data: int
    size: int


@dataclass(frozen=True)
class Layout:
    keys: list[str]  # normalised sample keys, in order of first appearance
    members: list[DataMember]  # every data-carrying entry, in tar order


def _sample_members(tar: _Tar) -> Iterator[tuple[_Entry, str, str]]:
    """``(entry, key, ext)`` for the entries webdataset groups into samples: keyed regular files."""
    for e in tar.entries():
        if e.kind == "file":
            split = member_key(e.name)
            if split is not None:
                yield e, split[0], split[1]


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: the header's bytes were not UTF-8
        return False
    return True


def scan(path: str) -> Layout:
    """Every sample and every entry that carries data, in one pass over the headers.

    A regular file with a sample key makes (or joins) a sample; an entry of another type that carries
    data (tar extractors write unknown types as regular files) joins the sample its name keys to; an
    extension-less file named exactly like a sample joins it; any other data (``README``,
    ``__index__``, ``.hidden.jpg``) belongs to no sample and is listed with ``sample == -1`` so it is
    still checked. Refuses a shard with a name that occurs twice among its non-directory entries (the
    later entry would silently replace the earlier one on extraction) or that is not valid UTF-8.
    """
    names: set[str] = set()
    duplicates: list[int] = []  # header offsets, for the error's first one
    not_utf8: list[int] = []
    index: dict[str, int] = {}
    data: list[tuple[tuple[str, str] | None, str, int, int]] = []
    with _Tar(path) as tar:
        for e in tar.entries():
            if e.kind in ("dir", "global"):
                continue
            if not _utf8(e.name):
                not_utf8.append(e.header)
                continue
            name = normalize_name(e.name)
            if name in names:
                duplicates.append(e.header)
            names.add(name)
            split = split_key(name)
            if e.kind == "file" and split is not None:
                index.setdefault(split[0], len(index))
            if e.kind == "file" or (e.kind == "other" and e.size > 0):
                data.append((split, name, e.offset_data, e.size))
    if not_utf8:
        raise ExpungeError(
            f"{len(not_utf8)} member name(s) are not valid UTF-8 (refusing the shard)",
            path,
            f"offset {not_utf8[0]}",
        )
    if duplicates:
        raise ExpungeError(
            f"{len(duplicates)} member name(s) occur more than once (on extraction the later entry"
            " replaces the earlier one; refusing the shard)",
            path,
            f"offset {duplicates[0]}",
        )
    members: list[DataMember] = []
    for split, name, offset, size in data:
        if split is not None and split[0] in index:
            members.append(DataMember(index[split[0]], split[0], split[1], offset, size))
        elif split is None and name in index:  # "KEY" beside "KEY.jpg"
            members.append(DataMember(index[name], name, "", offset, size))
        else:
            base = name.rpartition("/")[2]
            ext = split[1] if split else base if base.lower() in COMPANION_NAMES else ""
            members.append(DataMember(-1, None, ext, offset, size))
    return Layout(list(index), members)


def iter_members(path: str) -> Iterator[Member]:
    """The sample members of a shard in tar order, in one streaming pass over its headers.

    Only regular files that webdataset would group into samples are yielded; directories, links,
    PAX global headers and ``__meta__`` files are not sample members. No member data is read.
    """
    with _Tar(path) as tar:
        for e, key, ext in _sample_members(tar):
            yield Member(e.name, key, ext, e.offset_data, e.size)


def iter_data(path: str, layout: Layout | None = None) -> Iterator[tuple[int, str | None, str, bytes]]:
    """``(sample index, key, ext, bytes)`` of every data-carrying entry of :func:`scan`, in tar order.

    Memory is bounded by one member.
    """
    layout = layout if layout is not None else scan(path)
    with _Tar(path) as tar:
        for m in layout.members:
            yield m.sample, m.key, m.ext, tar.read(m.offset_data, m.size)


def iter_images(path: str) -> Iterator[tuple[int, str, bytes]]:
    """``(sample index, key, bytes)`` of every member of every sample, in tar order, whatever its extension.

    Every member, not only the first image: a second image (another extension, ``.jpg.bak``, none)
    would otherwise be published unchecked. The index is the sample's position in :func:`sample_keys`.
    """
    for sample, key, _ext, data in iter_data(path):
        if key is not None:
            yield sample, key, data


def sample_keys(path: str) -> list[str]:
    """Normalised sample keys in tar order (first appearance), samples without an image included."""
    return scan(path).keys


# ------------------------------------------------------------------------------------------------
# Rewriting
# ------------------------------------------------------------------------------------------------


def _frozen(keys: Collection[str]) -> Collection[str]:
    return keys if isinstance(keys, (set, frozenset, dict)) else frozenset(keys)


class _Copier:
    """Copy byte ranges of one file onto the end of another, in the kernel where it allows."""

    def __init__(self, src_fd: int, dst_fd: int, src: str) -> None:
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        self.src = src
        self.kernel = hasattr(os, "copy_file_range")

    def copy(self, offset: int, length: int) -> None:
        while length > 0:
            n = 0
            if self.kernel:
                try:
                    n = os.copy_file_range(self.src_fd, self.dst_fd, min(length, 1 << 30), offset)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY:
                        raise
                    self.kernel = False
                if n == 0:
                    self.kernel = False  # some filesystems report 0 rather than an error
            if n == 0:
                chunk = os.pread(self.src_fd, min(length, _COPY_CHUNK), offset)
                if not chunk:
                    where = f"offset {offset}"
                    raise ExpungeError("shard changed size while being copied (truncated)", self.src, where)
                self.write(chunk)
                n = len(chunk)
            offset += n
            length -= n

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.dst_fd, view) :]


def _record_size(total: int, trailer: int) -> int | None:
    """The record size a writer padded the archive to, from its length and its zero trailer.

    Writers put two zero blocks after the last member, then zeros up to a multiple of the record
    size. 10240 (tarfile, GNU tar, bsdtar) is preferred when it fits; otherwise the smallest block
    multiple that fits. None when no plausible record size explains the trailer.
    """
    pad = trailer - 2 * BLOCK
    if pad == 0:
        return BLOCK
    if total % BLOCK:
        return None
    if total % RECORD == 0 and pad < RECORD:
        return RECORD
    r = _pad(pad + 1)
    while r <= min(total, _MAX_RECORD):
        if total % r == 0:
            return r
        r += BLOCK
    return None


def rewrite_tar(src: str, dst: Path, drop_keys: Collection[str]) -> tuple[int, int]:
    """Write ``src`` to ``dst`` without any member of the samples in ``drop_keys`` (normalised keys).

    Kept entries are copied as byte ranges (extended headers, header, data, padding), so they stay
    byte-identical and in order. A dropped member's GNU long-name / PAX headers go with it; hard
    links to a dropped sample's members go too (they would carry its data on extraction).
    Directories, PAX global headers and non-sample files are kept. The end-of-archive zeros are
    re-padded to the source's record size; any bytes after them (another archive, garbage) are
    copied verbatim. With nothing dropped the output is byte-identical to the source.

    The whole shard is validated before ``dst`` is opened; ``dst`` is written in place, so callers
    wrap it in :func:`expunge.atomic.atomic_path`. Returns ``(samples_kept, samples_dropped)``.
    """
    drop = _frozen(drop_keys)
    ranges: list[list[int]] = []  # coalesced [start, end) ranges to keep
    kept: set[str] = set()
    dropped: set[str] = set()
    with _Tar(src) as tar:
        for e in tar.entries():
            gone = False
            if e.kind not in ("dir", "global"):
                split = member_key(e.name)
                # An extension-less "KEY" beside KEY's members goes with them (scan() counts it as theirs).
                gone = (split[0] if split is not None else normalize_name(e.name)) in drop
                if split is not None and e.kind == "file":
                    (dropped if gone else kept).add(split[0])
                if not gone and e.kind == "hardlink":
                    target = member_key(e.linkname)
                    gone = (target[0] if target is not None else normalize_name(e.linkname)) in drop
            if gone:
                continue
            if ranges and ranges[-1][1] == e.start:
                ranges[-1][1] = e.end
            else:
                ranges.append([e.start, e.end])
        marker, total = tar.end_marker, tar.size
        trailer_zero = _all_zero(tar, marker, total)
    body = sum(end - start for start, end in ranges)
    if os.path.exists(dst) and os.path.samefile(src, dst):  # O_TRUNC would destroy the source first
        raise ExpungeError("refusing to rewrite a shard onto itself", dst)
    record = _record_size(total, total - marker) if trailer_zero else None

    try:
        src_fd = os.open(src, os.O_RDONLY)
    except OSError as exc:
        raise ExpungeError(f"cannot read shard ({exc.strerror})", src) from None
    try:
        try:
            dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise ExpungeError(f"cannot write output ({exc.strerror})", dst) from None
        try:
            copier = _Copier(src_fd, dst_fd, src)
            for start, end in ranges:
                copier.copy(start, end - start)
            if record is None:  # not plain record padding: keep the source's trailer as it is
                copier.copy(marker, total - marker)
            else:
                zeros = 2 * BLOCK + (-(body + 2 * BLOCK)) % record
                while zeros > 0:
                    n = min(zeros, _COPY_CHUNK)
                    copier.write(bytes(n))
                    zeros -= n
        except OSError as exc:
            raise ExpungeError(f"cannot write output ({exc.strerror or type(exc).__name__})", dst) from None
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return len(kept), len(dropped)


def _all_zero(tar: _Tar, start: int, end: int) -> bool:
    pos = start
    while pos < end:
        n = min(end - pos, _COPY_CHUNK)
        chunk = tar.read(pos, n)
        if chunk.count(0) != n:
            return False
        pos += n
    return True


# ------------------------------------------------------------------------------------------------
# Linking samples to metadata rows
# ------------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,30}")  # an integer key's text; longer runs are not integers here


def _metadata_keys(meta: str, column: str) -> tuple[list[Any], bool]:
    """The key column's values (None for nulls) and whether they are integers.

    Text (string, large or view, dictionary-encoded, UTF-8 binary) or integers; anything else is
    refused: a float or struct key would link nothing and publish every sample unchecked.
    """
    names = parquet.open_file(meta).schema_arrow
    if column not in names.names:
        raise ExpungeError(f"no key column {column!r} in the companion parquet", meta)
    t = names.field(column).type
    if pa.types.is_dictionary(t):
        t = t.value_type
    integer = pa.types.is_integer(t)
    text = t in (pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.null())
    if not integer and not text:
        raise ExpungeError(f"key column {column!r} holds {t}, not text or integers", meta)
    values: list[Any] = []
    for col in parquet.iter_column(meta, column):
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if text and col.type != pa.string():
            try:
                col = pc.cast(col, pa.string())
            except pa.ArrowException:
                raise ExpungeError(f"key column {column!r} is not valid UTF-8 text", meta) from None
        values.extend(col.to_pylist())
    if text:  # spelled as member names are compared: "./000001" is the tar's "000001"
        values = [None if v is None else normalize_name(v) or None for v in values]  # "" names no sample
    return values, integer


def _row_index(meta: str, column: str) -> tuple[dict[Any, int], bool]:
    """Key value → metadata row; refuses duplicate keys (one of the rows would be named by the other)."""
    values, integer = _metadata_keys(meta, column)
    row_of: dict[Any, int] = {}
    duplicates = 0
    for i, v in enumerate(values):
        if v is None:
            continue  # a row without a key links to no sample: it is cleaned as a row on its own
        if v in row_of:
            duplicates += 1
        else:
            row_of[v] = i
    if duplicates:
        raise ExpungeError(
            f"{duplicates} duplicate key(s) in column {column!r}: rows and samples cannot be told apart"
            " (refusing the shard)",
            meta,
        )
    return row_of, integer


def _link_values(keys: Sequence[str], integer: bool) -> list[Any]:
    """What each tar key is looked up by: itself, or for an integer column its integer value.

    ``000000001`` links to the integer ``1`` only when no other key of the tar has that value too
    (``1`` and ``01`` would be ambiguous: neither links, and the shard is refused).
    """
    if not integer:
        return list(keys)
    ints: list[int | None] = [int(k) if _DIGITS.fullmatch(k) else None for k in keys]
    counts = Counter(v for v in ints if v is not None)
    return [v if v is not None and counts[v] == 1 else None for v in ints]


def link_rows(tar: str, keys: Sequence[str], meta: str, column: str) -> list[int]:
    """The metadata row of each sample (by :func:`sample_keys` order); refuses a shard that does not link.

    Every sample must link to exactly one row: a sample without a row would keep its image and its
    ``KEY.json`` (often holding the URL) in the release when the row is removed. Rows without a sample
    are normal (img2dataset's failed downloads). Keys match exactly; an integer column matches tar keys
    by value when unambiguous; duplicate keys in the metadata are refused.
    """
    row_of, integer = _row_index(meta, column)
    rows = [row_of.get(v, -1) if v is not None else -1 for v in _link_values(keys, integer)]
    unlinked = rows.count(-1)
    if unlinked:
        raise ExpungeError(
            f"{unlinked} of {len(keys)} sample(s) link to no row of {os.path.basename(meta)} by column"
            f" {column!r} (refusing the shard: their members would be published unchecked)",
            tar,
        )
    return rows


# ------------------------------------------------------------------------------------------------
# Companions
# ------------------------------------------------------------------------------------------------


def _statuses(src: str, rows: np.ndarray) -> Counter[str] | None:
    """How many of the given metadata rows had each img2dataset ``status``; None without that column."""
    if "status" not in parquet.open_file(src).schema_arrow.names:
        return None
    status = pa.chunked_array(list(parquet.iter_column(src, "status")))
    return Counter(str(v) for v in status.take(pa.array(rows, pa.int64())).to_pylist())


def _rows_of_keys(src: str, drop: Collection[str], key_column: str, in_tar: set[str]) -> np.ndarray:
    """Metadata rows of the dropped keys; every dropped sample of the tar must have one."""
    row_of, integer = _row_index(src, key_column)
    keys = sorted(drop)
    values = _link_values(keys, integer)
    rows = {k: row_of.get(v, -1) if v is not None else -1 for k, v in zip(keys, values, strict=True)}
    missing = sum(1 for k in in_tar if rows[k] < 0)
    if missing:
        raise ExpungeError(
            f"{missing} dropped sample(s) of the tar have no row in the companion parquet"
            f" (is {key_column!r} the column holding the tar keys?)",
            src,
        )
    return np.array(sorted(r for r in rows.values() if r >= 0), dtype=np.int64)


def _read_stats(path: str) -> dict[str, Any]:
    try:
        stats = read_json(Path(path))
    except json.JSONDecodeError as exc:
        raise ExpungeError("stats file is not valid JSON", path, f"line {exc.lineno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpungeError(f"cannot read stats file ({type(exc).__name__})", path) from None
    if not isinstance(stats, dict):
        raise ExpungeError("stats file is not a JSON object", path)
    return stats


def _decrement(obj: dict[str, Any], field: str, n: int) -> None:
    value = obj.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        obj[field] = max(0, value - n)


def rewrite_companions(
    shard: TarShard,
    out_dir: Path,
    drop_keys: Collection[str],
    key_column: str = "key",
    tmp_dir: Path | None = None,
    *,
    rows: Sequence[int] | None = None,
) -> None:
    """Write the shard's parquet and stats json to ``out_dir`` (same basenames) without the dropped rows.

    The parquet loses the given metadata ``rows`` (the clean stage knows them from the index), or, when
    ``rows`` is None, the rows of ``drop_keys`` by ``key_column`` (linked as :func:`link_rows` does);
    then every dropped sample in the tar must have a row there, or it is an error: the flagged rows' URLs
    and captions would otherwise stay without a word. In the stats, ``count`` drops by the rows removed
    and ``successes`` (and ``status_dict.success``) by the removed downloaded samples; with a ``status``
    column, ``failed_*`` counts drop by the removed rows of that status. ``expunge_removed`` records the
    rows removed, added to any earlier value so re-cleaning a release accumulates. Without a parquet,
    the dropped samples found in the tar count as the rows removed.

    All inputs are read and checked before anything is written; every file is written atomically.
    """
    drop = _frozen(drop_keys)
    in_tar = {k for k in sample_keys(shard.path) if k in drop}
    stats = _read_stats(shard.stats) if shard.stats is not None else None
    removed = successes = len(in_tar)  # the tar holds exactly the downloaded samples
    by_status: Counter[str] | None = None
    if shard.parquet is not None:
        n = parquet.num_rows(shard.parquet)
        if rows is None:
            hit_rows = _rows_of_keys(shard.parquet, drop, key_column, in_tar)
        else:
            hit_rows = np.unique(np.asarray(rows, dtype=np.int64))
            if len(hit_rows) and (hit_rows[0] < 0 or hit_rows[-1] >= n):
                raise ExpungeError("rows to remove lie outside the companion parquet", shard.parquet)
        keep = np.ones(n, dtype=bool)
        keep[hit_rows] = False
        by_status = _statuses(shard.parquet, hit_rows)
        with atomic_path(out_dir / os.path.basename(shard.parquet), tmp_dir) as tmp:
            parquet.rewrite(shard.parquet, tmp, keep)
        removed = len(hit_rows)
        if by_status is not None:
            successes = by_status.get("success", 0)
    if shard.stats is None or stats is None:
        return
    _decrement(stats, "count", removed)
    _decrement(stats, "successes", successes)
    status_dict = stats.get("status_dict")
    if isinstance(status_dict, dict):
        _decrement(status_dict, "success", successes)
    for status, k in (by_status or {}).items():
        if status.startswith("failed_"):
            _decrement(stats, status, k)
    before = stats.get("expunge_removed")
    before = before if isinstance(before, int) and not isinstance(before, bool) else 0
    stats["expunge_removed"] = before + removed
    write_json(out_dir / os.path.basename(shard.stats), stats, tmp_dir)
