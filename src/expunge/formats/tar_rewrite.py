"""Rewriting an image tar without some samples, by copying the kept byte ranges verbatim.

Kept members are copied as byte ranges (GNU long-name and PAX extended headers, header, data, padding)
instead of being re-encoded, which would change header bytes (uname, mtime precision, PAX records); the
ranges are handed to the kernel (``copy_file_range``) where it allows, so a rewrite runs at file-copy speed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from expunge.errors import ExpungeError
from expunge.formats.paths import is_url
from expunge.formats.tar import BLOCK, RECORD, Archive, member_key, normalize_name, padded

_COPY_CHUNK = 1 << 22
_MAX_RECORD = 1 << 20  # largest record size we infer from a source's end-of-archive padding
# copy_file_range refusals that mean "not here" (cross-device, old kernel, filesystem) -> plain copy.
_NO_KERNEL_COPY = frozenset((errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM))


def frozen(keys: Collection[str]) -> Collection[str]:
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
    r = padded(pad + 1)
    while r <= min(total, _MAX_RECORD):
        if total % r == 0:
            return r
        r += BLOCK
    return None


@contextlib.contextmanager
def _fetched(src: str, folder: Path) -> Iterator[str]:
    """A remote tar as a local temporary file: a rewrite keeps nearly every byte of it, so the whole
    object is read once, streamed, then the byte ranges are copied locally as for any shard."""
    from expunge.storage.fs import download

    fd, name = tempfile.mkstemp(prefix=".expunge-fetch-", suffix=".tar", dir=folder)
    os.close(fd)
    try:
        download(src, Path(name), folder)
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


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
    if is_url(src):
        with _fetched(src, Path(dst).parent) as local:
            return rewrite_tar(local, dst, drop_keys)
    drop = frozen(drop_keys)
    ranges: list[list[int]] = []  # coalesced [start, end) ranges to keep
    kept: set[str] = set()
    dropped: set[str] = set()
    with Archive(src) as tar:
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


def _all_zero(tar: Archive, start: int, end: int) -> bool:
    pos = start
    while pos < end:
        n = min(end - pos, _COPY_CHUNK)
        chunk = tar.read(pos, n)
        if chunk.count(0) != n:
            return False
        pos += n
    return True
