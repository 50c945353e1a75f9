"""CLIP embedding files (``.npy``) that are aligned row by row with a metadata shard.

LAION ships ``img_emb/img_emb_0000.npy`` and ``text_emb/text_emb_0000.npy`` beside
``metadata/metadata_0000.parquet``: row *i* of each file describes row *i* of the shard, and nothing
else records that pairing. When the clean stage removes rows from a shard it must remove the same rows
from every aligned embedding file, or every later row silently describes the wrong image. This module
finds those files, checks that they really are aligned, and rewrites them.

Embedding files are large (LAION-2B's are about 1 GB each), so discovery reads only the ``.npy`` header
and the rewrite streams fixed-size chunks through a read-only memory map: memory stays bounded by
``chunk_rows`` whatever the file size. Errors name the file and never quote its bytes.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from expunge.errors import ExpungeError

# Folders whose name ends like this hold embeddings (LAION: ``img_emb``, ``text_emb``).
EMB_DIR_SUFFIX = "_emb"
# ``kind`` given to a ``NAME.npy`` that sits next to ``NAME.parquet``: it has no folder or prefix to name it.
SIDE_BY_SIDE_KIND = "emb"
# Only float embeddings are expected; anything else under an ``*_emb`` folder is more likely a mistake
# (labels, ids) than an embedding, and rewriting it row by row could be wrong.
FLOAT_DTYPES = frozenset({"float16", "float32", "float64"})

_SHARD_NUMBER = re.compile(r"(\d+)$")
_VERSIONS = ((1, 0), (2, 0), (3, 0))


@dataclass(frozen=True)
class EmbeddingFile:
    """One ``.npy`` embedding matrix, described from its header alone."""

    kind: str  # "img_emb" | "text_emb" | other folder name; "emb" for NAME.npy beside NAME.parquet
    path: str  # absolute
    rows: int
    dim: int
    dtype: str  # "float16" | "float32" (numpy dtype name; byte order is kept on rewrite)


@dataclass(frozen=True)
class _Header:
    version: tuple[int, int]
    dtype: np.dtype[np.generic]
    rows: int
    dim: int
    data_offset: int


def _read_header(path: str) -> _Header:
    """Parse and validate the header of a 2-D, C-order float ``.npy``; never touches the data.

    The file size is checked against the declared shape so a truncated (or over-long) file is reported
    here, before anything is written, rather than as a short read halfway through a rewrite.
    """
    try:
        with open(path, "rb") as fh:
            version = _read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                # Version 3.0 differs from 2.0 only in allowing UTF-8 field names in the header text.
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            data_offset = fh.tell()
            size = os.fstat(fh.fileno()).st_size
    except ExpungeError:
        raise
    except OSError as exc:
        raise ExpungeError(
            f"cannot read embedding file ({exc.strerror or type(exc).__name__})", path
        ) from None
    except (ValueError, SyntaxError, TypeError, EOFError):
        # numpy's messages quote the header text; say only what kind of problem it is.
        raise ExpungeError("not a valid .npy file (corrupt or truncated header)", path) from None
    if len(shape) != 2:
        raise ExpungeError(f"embedding file must be 2-D (rows, dim); it has {len(shape)} dimensions", path)
    if fortran:
        raise ExpungeError("Fortran-order embedding files are not supported; save them in C order", path)
    if dtype.name not in FLOAT_DTYPES:
        raise ExpungeError(f"embedding file has dtype {dtype.name}; expected float16 or float32", path)
    rows, dim = int(shape[0]), int(shape[1])
    expected = data_offset + rows * dim * dtype.itemsize
    if size != expected:
        what = "truncated" if size < expected else "longer than its header declares"
        raise ExpungeError(f"embedding file is {what}: {size} bytes on disk, header implies {expected}", path)
    return _Header(version, dtype, rows, dim, data_offset)


def _read_magic(fh: BinaryIO) -> tuple[int, int]:
    """The format version; ExpungeError for a non-.npy file or a version this code cannot rewrite."""
    major, minor = np.lib.format.read_magic(fh)
    version = (int(major), int(minor))
    if version not in _VERSIONS:
        raise ExpungeError(f"unsupported .npy format version {major}.{minor}", getattr(fh, "name", None))
    return version


def inspect_npy(path: str, kind: str) -> EmbeddingFile:
    """Describe one embedding file from its header (absolute path), validating it on the way."""
    path = os.path.abspath(path)
    header = _read_header(path)
    return EmbeddingFile(kind, path, header.rows, header.dim, header.dtype.name)


def _shard_number(stem: str) -> str | None:
    match = _SHARD_NUMBER.search(stem)
    return match.group(1) if match else None


def _is_within(path: str, top: str) -> bool:
    return os.path.commonpath([path, top]) == top


def find_aligned(metadata_path: str, root: str) -> list[EmbeddingFile]:
    """Embedding files aligned with one metadata shard, sorted by kind then path.

    Two layouts are recognised:

    * LAION's: ``*_emb`` folders beside the shard's folder (``metadata/metadata_0000.parquet`` ↔
      ``img_emb/img_emb_0000.npy``) or beside the shard itself (``ds/part_7.parquet`` ↔
      ``ds/img_emb/img_emb_7.npy``). A file matches when the digits ending its name equal, as a string,
      the digits ending the shard's name: ``0000`` never matches ``00000`` or ``10000``, so padding and
      numbering cannot pair the wrong files.
    * ``NAME.npy`` next to ``NAME.parquet``.

    ``root`` is the dataset root the shards were discovered under. The parent folder of the shard's
    folder is searched only when it lies inside ``root``, or is ``root``'s own parent: discovery sets
    ``root`` to ``laion2B-en/metadata`` when that is the only shard folder, and ``img_emb`` then sits one
    level above it. Nothing further up is searched, so an unrelated ``*_emb`` folder elsewhere on the
    disk is never paired with this dataset.

    Only headers are read. A matching file that is not a valid 2-D float ``.npy`` raises ExpungeError
    rather than being skipped: skipping it would leave an embedding file that no longer lines up.
    """
    meta = os.path.abspath(metadata_path)
    top = os.path.abspath(root)
    meta_dir = os.path.dirname(meta)
    stem = os.path.splitext(os.path.basename(meta))[0]
    found: dict[str, EmbeddingFile] = {}

    def add(path: str, kind: str) -> None:
        key = os.path.realpath(path)
        if key not in found:
            found[key] = inspect_npy(path, kind)

    side = os.path.join(meta_dir, stem + ".npy")
    if os.path.isfile(side):
        add(side, SIDE_BY_SIDE_KIND)

    number = _shard_number(stem)
    if number is not None:
        search = [meta_dir]
        parent = os.path.dirname(meta_dir)
        if parent != meta_dir and (_is_within(parent, top) or parent == os.path.dirname(top)):
            search.append(parent)
        for base in search:
            for emb_dir in _emb_dirs(base):
                for name in sorted(os.listdir(emb_dir)):
                    name_stem, ext = os.path.splitext(name)
                    full = os.path.join(emb_dir, name)
                    if ext == ".npy" and _shard_number(name_stem) == number and os.path.isfile(full):
                        add(full, os.path.basename(emb_dir))
    return sorted(found.values(), key=lambda e: (e.kind, e.path))


def _emb_dirs(base: str) -> list[str]:
    """``*_emb`` folders directly inside ``base`` (hidden and underscore folders are tool state)."""
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    return [
        os.path.join(base, n)
        for n in names
        if n.endswith(EMB_DIR_SUFFIX)
        and not n.startswith((".", "_"))
        and os.path.isdir(os.path.join(base, n))
    ]


def check_aligned(emb: EmbeddingFile, metadata_rows: int) -> None:
    """Refuse a pair whose row counts differ: removing "the same rows" from both would then be wrong."""
    if emb.rows != metadata_rows:
        raise ExpungeError(
            f"{emb.kind} embedding file has {emb.rows} rows but its metadata shard has {metadata_rows};"
            " they must be aligned row by row",
            emb.path,
        )


def _header_bytes(version: tuple[int, int], dtype: np.dtype[np.generic], rows: int, dim: int) -> bytes:
    """An ``.npy`` header in the source's format version, so readers pinned to it keep working.

    numpy writes 1.0 and 2.0 headers publicly; 3.0 is 2.0 with UTF-8 allowed in field names, and a float
    descr is ASCII, so a 2.0 header with the version byte changed is a valid 3.0 header.
    """
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (rows, dim),
    }
    buf = io.BytesIO()
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue()
    np.lib.format.write_array_header_2_0(buf, header)
    data = bytearray(buf.getvalue())
    data[6], data[7] = version
    return bytes(data)


def rewrite_embeddings(src: str, dst: Path, keep: np.ndarray, chunk_rows: int = 65536) -> int:
    """Write ``dst`` with only the rows of ``src`` where ``keep`` is true; return the rows written.

    dtype (byte order included), dim and ``.npy`` format version are preserved, and row order is kept.
    Reads go through ``np.load(mmap_mode="r")`` one chunk of ``chunk_rows`` rows at a time, so memory
    is bounded by one chunk whatever the file size; a fully kept chunk is written straight from the map
    without a copy, which also makes an all-kept rewrite's data section byte-identical to the source.

    ``dst`` is written in place: the caller wraps it in ``atomic_path`` so a failure leaves nothing.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    mask = np.asarray(keep)
    if mask.dtype != np.bool_ or mask.ndim != 1:
        raise ValueError("keep must be a 1-D boolean mask")
    header = _read_header(src)
    if mask.shape[0] != header.rows:
        raise ExpungeError(
            f"keep mask has {mask.shape[0]} rows but the embedding file has {header.rows}", src
        )
    kept = int(np.count_nonzero(mask))
    with open(dst, "wb") as out:
        out.write(_header_bytes(header.version, header.dtype, kept, header.dim))
        if kept == 0:
            return 0
        try:
            matrix = np.load(src, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise ExpungeError("cannot map embedding file (corrupt or truncated)", src) from None
        if matrix.shape != (header.rows, header.dim) or matrix.dtype != header.dtype:
            raise ExpungeError("embedding file changed while being read", src)
        written = 0
        for start in range(0, header.rows, chunk_rows):
            stop = min(start + chunk_rows, header.rows)
            part = mask[start:stop]
            block = matrix[start:stop]
            n = int(np.count_nonzero(part))
            if n == 0:
                continue
            if n == stop - start:
                out.write(block.data.cast("B"))
            else:
                out.write(np.ascontiguousarray(block[part]).data.cast("B"))
            written += n
        del matrix
    if written != kept:  # pragma: no cover - the mask was counted above; this guards the loop itself
        raise ExpungeError("embedding rewrite wrote the wrong number of rows", src)
    return written
