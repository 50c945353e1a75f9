"""The image part of the index: digests and PDQ of every file an image shard publishes, one decode each.

Per shard, ``images.parquet`` has one line per *member*: every data-carrying entry of the tar (every
member of every sample, whatever its extension, and data outside every sample) or every file of the
folder. Each line has the sample it belongs to and that sample's metadata row (both -1 for data outside
every sample), its position among the shard's members, MD5/SHA-1/SHA-256 of the stored bytes, PDQ and
its quality (null when the bytes could not be decoded, with the reason in ``error``), and optionally
the 7 other dihedral PDQ hashes. A row's decision aggregates over its lines: a match on any member
removes the row; a member that may be an image and does not decode quarantines it.

Digests are always computed, even for bytes that do not decode: an exact-bytes list can still match.
Every member is tried as an image; only members whose extension marks text or structured data
(:func:`expunge.formats.members.is_companion`) may fail to decode without an ``error``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge.arrow import read_parquet
from expunge.errors import ExpungeError
from expunge.features import base as features
from expunge.features.base import IMAGES_FILE as IMAGES_FILE
from expunge.formats.members import MemberData, is_companion, is_image_ext

if TYPE_CHECKING:
    from expunge.features.images import ImageHashes

IMAGE_FEATURES = tuple(f.name for f in features.IMAGE_FEATURES)
DIHEDRAL_FEATURE = features.DIHEDRAL.name

SCHEMA = pa.schema(
    [
        ("sample", pa.int64()),
        ("key", pa.string()),
        ("row", pa.int64()),
        ("member", pa.int64()),
        ("md5", pa.binary(16)),
        ("sha1", pa.binary(20)),
        ("sha256", pa.binary(32)),
        ("pdq", pa.binary(32)),
        ("quality", pa.int16()),
        ("dihedral", pa.list_(pa.binary(32))),
        ("error", pa.string()),
    ]
)


def _table(hashes: list[ImageHashes], cols: dict[str, list[object]]) -> pa.Table:
    return pa.table(
        {
            "sample": pa.array(cols["sample"], pa.int64()),
            "key": pa.array(cols["key"], pa.string()),
            "row": pa.array(cols["row"], pa.int64()),
            "member": pa.array(cols["member"], pa.int64()),
            "md5": pa.array([h.md5 for h in hashes], pa.binary(16)),
            "sha1": pa.array([h.sha1 for h in hashes], pa.binary(20)),
            "sha256": pa.array([h.sha256 for h in hashes], pa.binary(32)),
            "pdq": pa.array([h.pdq for h in hashes], pa.binary(32)),
            "quality": pa.array([h.quality for h in hashes], pa.int16()),
            "dihedral": pa.array(
                [list(h.dihedral) if h.dihedral else None for h in hashes], pa.list_(pa.binary(32))
            ),
            "error": pa.array([h.error for h in hashes], pa.string()),
        },
        schema=SCHEMA,
    )


def _hash_member(ext: str, data: bytes, *, max_pixels: int, dihedral: bool) -> ImageHashes:
    """Every signal of one member; ``error`` only where an undecodable member may be a hidden image.

    A member whose extension marks text or data (``txt``, ``json``...) that does not decode carries no
    error; neither does an empty member without an image extension (no bytes, no picture). Anything
    else that does not decode keeps its reason, so its row is quarantined.
    """
    from expunge.features.images import hash_image  # Pillow and PDQ load only when images are indexed

    h = hash_image(data, max_pixels=max_pixels, dihedral=dihedral)
    if h.error is not None and (is_companion(ext) or (not data and not is_image_ext(ext))):
        return replace(h, error=None)
    return h


def index_images(
    members: Iterable[MemberData],
    out: Path,
    rows: Sequence[int] | None,
    *,
    dihedral: bool,
    max_pixels: int,
    source: str = "",
    batch: int = 1024,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, dict[str, int], int]:
    """Hash every member of a shard into ``out``; returns (members, errors by reason, members outside).

    ``rows`` maps a sample index to its metadata row (None: rows are the samples). Data outside every
    sample (row -1) cannot be quarantined row by row, so one that may be an image and does not decode
    makes the shard refused (``source`` names it); one that matches a list is refused by the match stage.
    """
    # Pillow reports some decoder trouble through logging; here it is counted and quarantined instead, and
    # a worker process has no handler but logging's last resort, which would print to stderr.
    logging.getLogger("PIL").setLevel(logging.CRITICAL)

    errors: dict[str, int] = {}
    outside = outside_errors = 0
    count = 0
    writer = pq.ParquetWriter(out, SCHEMA, compression="none")
    try:
        pending: list[ImageHashes] = []
        cols: dict[str, list[object]] = {"sample": [], "key": [], "row": [], "member": []}
        for sample, key, ext, data in members:
            h = _hash_member(ext, data, max_pixels=max_pixels, dihedral=dihedral)
            if sample < 0:
                row = -1
                outside += 1
                outside_errors += h.error is not None
            else:
                if rows is not None and sample >= len(rows):
                    raise ExpungeError("shard changed while it was being indexed; run again", source or None)
                row = sample if rows is None else rows[sample]
                if h.error:
                    errors[h.error] = errors.get(h.error, 0) + 1
            pending.append(h)
            for name, value in (("sample", sample), ("key", key), ("row", row), ("member", count)):
                cols[name].append(value)
            count += 1
            if len(pending) >= batch:
                writer.write_table(_table(pending, cols))
                if on_progress:
                    on_progress(len(pending))
                pending, cols = [], {name: [] for name in cols}
        if pending or count == 0:
            writer.write_table(_table(pending, cols))
    finally:
        writer.close()
    if outside_errors:
        raise ExpungeError(
            f"{outside_errors} file(s) outside every sample may be images and could not be decoded"
            " (they cannot be quarantined with a row; refusing the shard)",
            source or None,
        )
    return count, errors, outside


def read_images(index_dir: Path, columns: list[str] | None = None) -> pa.Table:
    return read_parquet(index_dir / IMAGES_FILE, columns=columns)


def quality_mask(table: pa.Table, floor: int) -> np.ndarray:
    """Members whose PDQ may be matched: decoded, and at or above the quality floor."""
    q = table.column("quality").to_numpy(zero_copy_only=False)
    pdq_valid = table.column("pdq").is_valid().to_numpy(zero_copy_only=False)
    mask: np.ndarray = pdq_valid & (np.nan_to_num(q.astype(np.float64), nan=-1) >= floor)
    return mask
