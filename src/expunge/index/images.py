"""The image part of the index: digests and PDQ of every image a shard holds, one decode per image.

Per shard, ``images.parquet`` has one line per sample in tar order: the sample's key, the metadata row
it belongs to, MD5/SHA-1/SHA-256 of the stored bytes, PDQ and its quality (null when the image could
not be decoded, with the reason in ``error``), and optionally the 7 other dihedral PDQ hashes.
Digests are always computed, even for images that do not decode: an exact-bytes list can still match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from expunge.signals.images import ImageHashes

IMAGES_FILE = "images.parquet"
IMAGE_FEATURES = ("image:md5", "image:sha1", "image:sha256", "image:pdq")
DIHEDRAL_FEATURE = "image:pdq8"

SCHEMA = pa.schema(
    [
        ("sample", pa.int64()),
        ("key", pa.string()),
        ("row", pa.int64()),
        ("md5", pa.binary(16)),
        ("sha1", pa.binary(20)),
        ("sha256", pa.binary(32)),
        ("pdq", pa.binary(32)),
        ("quality", pa.int16()),
        ("dihedral", pa.list_(pa.binary(32))),
        ("error", pa.string()),
    ]
)
COLUMN_OF_FEATURE = {"image:md5": "md5", "image:sha1": "sha1", "image:sha256": "sha256", "image:pdq": "pdq"}


def _table(hashes: list[ImageHashes], samples: list[int], keys: list[str], rows: list[int]) -> pa.Table:
    return pa.table(
        {
            "sample": pa.array(samples, pa.int64()),
            "key": pa.array(keys, pa.string()),
            "row": pa.array(rows, pa.int64()),
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


def index_images(
    images: Iterator[tuple[int, str, bytes]],
    out: Path,
    row_of_key: dict[str, int] | None,
    *,
    dihedral: bool,
    max_pixels: int,
    batch: int = 1024,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, dict[str, int], list[str]]:
    """Hash every image of a tar into ``out``. Returns (images, errors by reason, orphan keys).

    ``row_of_key`` maps a sample key to its metadata row; samples without one ("orphans") get rows after
    the metadata's last row, so they are still counted and can still be removed.
    """
    from expunge.signals.images import hash_image  # Pillow and PDQ load only when images are indexed

    # Pillow reports some decoder trouble through logging; here it is counted and quarantined instead, and
    # a worker process has no handler but logging's last resort, which would print to stderr.
    logging.getLogger("PIL").setLevel(logging.CRITICAL)

    errors: dict[str, int] = {}
    orphans: list[str] = []
    next_orphan_row = len(row_of_key) if row_of_key is not None else 0
    count = 0
    writer = pq.ParquetWriter(out, SCHEMA, compression="none")
    try:
        pending: list[ImageHashes] = []
        samples: list[int] = []
        keys: list[str] = []
        rows: list[int] = []
        for sample, key, data in images:
            h = hash_image(data, max_pixels=max_pixels, dihedral=dihedral)
            if h.error:
                errors[h.error] = errors.get(h.error, 0) + 1
            if row_of_key is None:
                row = sample
            elif key in row_of_key:
                row = row_of_key[key]
            else:
                orphans.append(key)
                row = next_orphan_row
                next_orphan_row += 1
            pending.append(h)
            samples.append(sample)
            keys.append(key)
            rows.append(row)
            count += 1
            if len(pending) >= batch:
                writer.write_table(_table(pending, samples, keys, rows))
                if on_progress:
                    on_progress(len(pending))
                pending, samples, keys, rows = [], [], [], []
        if pending or count == 0:
            writer.write_table(_table(pending, samples, keys, rows))
    finally:
        writer.close()
    return count, errors, orphans


def read_images(index_dir: Path, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(index_dir / IMAGES_FILE, columns=columns)


def quality_mask(table: pa.Table, floor: int) -> np.ndarray:
    """Samples whose PDQ may be matched: decoded, and at or above the quality floor."""
    q = table.column("quality").to_numpy(zero_copy_only=False)
    pdq_valid = table.column("pdq").is_valid().to_numpy(zero_copy_only=False)
    mask: np.ndarray = pdq_valid & (np.nan_to_num(q.astype(np.float64), nan=-1) >= floor)
    return mask
