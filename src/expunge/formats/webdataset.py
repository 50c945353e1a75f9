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
  and the byte offset, and a missing end-of-archive marker must count as truncation (tarfile
  silently accepts a shard cut at a member boundary, which would drop samples without a word).

Samples follow webdataset's own rules so keys match what training code sees: only regular files are
sample members; a member's key is its name up to the first dot of its basename, with its directory
prefix (webdataset's ``base_plus_ext`` regex, quirks included); ``__meta__``-style names are skipped.
Unlike webdataset, a key that recurs non-consecutively is one sample here (its members are removed
together), listed at its first appearance.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.atomic import atomic_path, read_json, write_json
from expunge.errors import ExpungeError
from expunge.formats import parquet

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
SUFFIXES = (".tar",)

BLOCK = 512
RECORD = 10240  # tarfile's, GNU tar's and bsdtar's default record size (blocking factor 20)
_ZERO_BLOCK = bytes(BLOCK)
_READ_BUFFER = 1 << 20  # headers are read through this buffer, so small members cost no extra I/O
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
    paths: list[str] = []
    for spec in specs:
        spec = spec.removeprefix("file://")
        if os.path.isdir(spec):
            for dirpath, dirnames, filenames in os.walk(spec):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                paths.extend(os.path.join(dirpath, f) for f in filenames if _is_tar(f))
        elif any(ch in spec for ch in "*?["):
            paths.extend(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p) and _is_tar(p))
        elif os.path.isfile(spec):
            paths.append(spec)
        else:
            raise ExpungeError("dataset path not found (expected a directory, glob or tar file)", spec)
    absolute = sorted({os.path.abspath(p) for p in paths})
    if not absolute:
        raise ExpungeError("no tar shards found", ", ".join(specs))
    root = os.path.commonpath([os.path.dirname(p) for p in absolute])
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


# ------------------------------------------------------------------------------------------------
# The scanner
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """One archive entry with the byte range it occupies, extended headers included."""

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
    return field.split(b"\x00", 1)[0]


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
    if not all(48 <= c <= 55 for c in text):  # int(..., 8) would also take '+', '_' and '0o'
        return None
    return int(text, 8)


def _checksum_ok(buf: bytes) -> bool:
    stored = _number(buf[148:156])
    if stored is None:
        return False
    unsigned = sum(buf) - sum(buf[148:156]) + 8 * 32  # the checksum field counts as eight spaces
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
    """An open shard read through a large buffer; :meth:`entries` walks it header by header.

    Every byte from offset 0 to :attr:`end_marker` belongs to exactly one entry, in order, so a
    rewrite can be expressed as a list of kept byte ranges.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fh: BinaryIO = open(path, "rb", buffering=_READ_BUFFER)  # noqa: SIM115 (closed in close())
            self.size = os.fstat(self.fh.fileno()).st_size
        except OSError as exc:
            raise ExpungeError(f"cannot read shard ({exc.strerror or type(exc).__name__})", path) from None
        self.end_marker = -1  # offset of the end-of-archive zero blocks, once entries() has finished

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> _Tar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, message: str, offset: int) -> ExpungeError:
        return ExpungeError(message, self.path, f"offset {offset}")

    def read(self, offset: int, n: int) -> bytes:
        try:
            self.fh.seek(offset)
            data = self.fh.read(n)
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
            linkname = pax.get("linkpath", longlink or _cstr(buf[157:257]).decode("utf-8", "surrogateescape"))

            if "size" in pax:
                text = pax["size"]
                if not (text.isascii() and text.isdigit()):
                    raise self.fail("malformed PAX extended header (bad size)", start or pos)
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


def iter_members(path: str) -> Iterator[Member]:
    """The sample members of a shard in tar order, in one streaming pass over its headers.

    Only regular files that webdataset would group into samples are yielded; directories, links,
    PAX global headers and ``__meta__`` files are not sample members. No member data is read.
    """
    with _Tar(path) as tar:
        for e in tar.entries():
            if e.kind != "file":
                continue
            split = split_key(e.name)
            if split is not None:
                yield Member(e.name, split[0], split[1], e.offset_data, e.size)


def _is_image(ext: str, wanted: frozenset[str]) -> bool:
    ext = ext.lower()
    return ext in wanted or ext.rpartition(".")[2] in wanted


def iter_images(path: str, exts: Sequence[str] = IMAGE_EXTS) -> Iterator[tuple[int, str, bytes]]:
    """``(sample index, key, image bytes)`` for the first image member of each sample, in tar order.

    The index is the sample's position in :func:`sample_keys`, so samples without an image leave a
    gap. An extension matches case-insensitively, whole (``seg.png``) or by its last part (``png``)
    as webdataset's decoders do. Memory is bounded by one member.
    """
    wanted = frozenset(e.lower().lstrip(".") for e in exts)
    index: dict[str, int] = {}
    imaged: set[str] = set()
    with _Tar(path) as tar:
        for e in tar.entries():
            if e.kind != "file":
                continue
            split = split_key(e.name)
            if split is None:
                continue
            key, ext = split
            i = index.setdefault(key, len(index))
            if key in imaged or not _is_image(ext, wanted):
                continue
            imaged.add(key)
            yield i, key, tar.read(e.offset_data, e.size)


def sample_keys(path: str) -> list[str]:
    """Sample keys in tar order (first appearance), samples without an image included."""
    return list(dict.fromkeys(m.key for m in iter_members(path)))


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
    """Write ``src`` to ``dst`` without any member of the samples in ``drop_keys``.

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
                split = split_key(e.name)
                if split is not None:
                    gone = split[0] in drop
                    if e.kind == "file":
                        (dropped if gone else kept).add(split[0])
                if not gone and e.kind == "hardlink":
                    target = split_key(e.linkname)
                    gone = target is not None and target[0] in drop
            if gone:
                continue
            if ranges and ranges[-1][1] == e.start:
                ranges[-1][1] = e.end
            else:
                ranges.append([e.start, e.end])
        marker, total = tar.end_marker, tar.size
        trailer_zero = _all_zero(tar, marker, total)
    body = sum(end - start for start, end in ranges)
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
# Companions
# ------------------------------------------------------------------------------------------------


def _rewrite_parquet(
    src: str, final: Path, drop: Collection[str], key_column: str
) -> tuple[int, Counter[str] | None]:
    """Rewrite the companion parquet without the dropped keys' rows.

    Returns the number of rows removed and, when there is a ``status`` column (img2dataset's
    ``success`` / ``failed_to_download`` / ...), how many removed rows had each status.
    """
    names = parquet.open_file(src).schema_arrow.names
    if key_column not in names:
        raise ExpungeError(f"no key column {key_column!r} in the companion parquet", src)
    value_set = pa.array(sorted(drop), type=pa.string())
    statuses = parquet.iter_column(src, "status") if "status" in names else None
    by_status: Counter[str] | None = Counter() if statuses is not None else None
    masks: list[np.ndarray] = []
    for keys in parquet.iter_column(src, key_column):
        status = next(statuses) if statuses is not None else None
        if not pa.types.is_string(keys.type):
            try:
                keys = pc.cast(keys, pa.string())
            except pa.ArrowException:
                raise ExpungeError(f"key column {key_column!r} cannot be read as text", src) from None
        hit = pc.fill_null(pc.is_in(keys, value_set=value_set), False)
        mask = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
        masks.append(mask)
        if by_status is not None and status is not None and mask.any():
            removed = pc.filter(status, hit)
            for value in removed.to_pylist():
                by_status[str(value)] += 1
    drop_mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
    with atomic_path(final) as tmp:
        parquet.rewrite(src, tmp, ~drop_mask)
    return int(drop_mask.sum()), by_status


def _decrement(obj: dict[str, Any], field: str, n: int) -> None:
    value = obj.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        obj[field] = max(0, value - n)


def rewrite_companions(
    shard: TarShard, out_dir: Path, drop_keys: Collection[str], key_column: str = "key"
) -> None:
    """Write the shard's parquet and stats json to ``out_dir`` (same basenames) without ``drop_keys``.

    The parquet loses the dropped keys' rows (faithfully, via :func:`parquet.rewrite`). In the
    stats, ``count`` drops by the rows removed and ``successes`` (and ``status_dict.success``) by
    the removed samples that had been downloaded; with a ``status`` column, ``failed_*`` counts drop
    by the removed rows of that status. ``expunge_removed`` records the rows removed (added to any
    earlier value, so re-cleaning a release accumulates). Without a parquet, the dropped samples
    found in the tar count as removed successes. Every file is written atomically.
    """
    drop = _frozen(drop_keys)
    removed = 0
    by_status: Counter[str] | None = None
    if shard.parquet is not None:
        removed, by_status = _rewrite_parquet(
            shard.parquet, out_dir / os.path.basename(shard.parquet), drop, key_column
        )
    if shard.stats is None:
        return
    if by_status is not None:
        successes = by_status.get("success", 0)
    else:  # the tar holds exactly the downloaded samples
        successes = sum(1 for k in sample_keys(shard.path) if k in drop)
    if shard.parquet is None:
        removed = successes
    try:
        stats = read_json(Path(shard.stats))
    except json.JSONDecodeError as exc:
        raise ExpungeError("stats file is not valid JSON", shard.stats, f"line {exc.lineno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpungeError(f"cannot read stats file ({type(exc).__name__})", shard.stats) from None
    if not isinstance(stats, dict):
        raise ExpungeError("stats file is not a JSON object", shard.stats)
    _decrement(stats, "count", removed)
    _decrement(stats, "successes", successes)
    status_dict = stats.get("status_dict")
    if isinstance(status_dict, dict):
        _decrement(status_dict, "success", successes)
    for status, n in (by_status or {}).items():
        if status.startswith("failed_"):
            _decrement(stats, status, n)
    before = stats.get("expunge_removed")
    before = before if isinstance(before, int) and not isinstance(before, bool) else 0
    stats["expunge_removed"] = before + removed
    write_json(out_dir / os.path.basename(shard.stats), stats)
