"""Metadata parquet shards (LAION, Re-LAION, Hub datasets) as a format, with their aligned embeddings.

The parquet reading and faithful rewriting is :mod:`expunge.formats.parquet`; this module is the
format's side of the interface. CLIP embedding files aligned row by row with a shard
(:mod:`expunge.formats.embeddings`) are its companions: they are found beside the shard or in LAION's
``*_emb`` folders and lose exactly the rows the shard loses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.formats import parquet
from expunge.formats.base import (
    CleanRows,
    CleanTarget,
    Shard,
    ShardFormat,
    ShardOutputs,
    parquet_rows_or_unreadable,
    place,
)
from expunge.formats.embeddings import EmbeddingFile, check_aligned, find_aligned, rewrite_embeddings
from expunge.formats.paths import is_url


class ParquetFormat(ShardFormat):
    """One metadata parquet per shard; the dataset format when no other format claims the specs."""

    name = "parquet"
    fallback = True  # today's behaviour: any spec no image format claims is read as parquet
    requires_url = True
    media_type = "application/x-parquet"

    def claims(self, specs: Sequence[str]) -> bool:
        return True

    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        root, shards = parquet.discover(specs)
        return root, [Shard(s.name, self.name, s.path, s.path) for s in shards]

    def content_files(self, shard: Shard) -> list[str]:
        return [shard.location]

    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        return ShardOutputs([target.out, *(dst for _, dst in _embeddings(shard, target))], [target.out])

    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        """Placed byte for byte when nothing goes, else rewritten as it was written; embeddings alike."""
        embeddings = _embeddings(shard, target)
        for emb, _ in embeddings:  # check every file before writing any
            check_aligned(emb, rows.rows_in)
        if not rows.gone:
            action = place(shard.location, target.out, target.tmp_dir)
            for emb, dst in embeddings:
                atomic.copy_or_link(Path(emb.path), dst, target.tmp_dir)
            return action
        keep = np.ones(rows.rows_in, dtype=bool)
        keep[rows.gone] = False
        with atomic.atomic_path(target.out, target.tmp_dir) as tmp:
            written = parquet.rewrite(shard.location, tmp, keep, rows.capture, rows.captured)
            if written != int(keep.sum()):
                raise RuntimeError(f"{shard.name}: wrote {written} rows, expected {int(keep.sum())}")
        for emb, dst in embeddings:
            with atomic.atomic_path(dst, target.tmp_dir) as tmp:
                rewrite_embeddings(emb.path, tmp, keep)
        return "rewritten"

    def owns_release_shard(self, release: Path, name: str) -> bool:
        return True

    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        main = release / name
        return [str(main)], parquet_rows_or_unreadable(main) if main.is_file() else None


@functools.lru_cache(maxsize=8)
def _refuse_remote_embeddings(root: str) -> None:
    """Embedding files beside a dataset on object storage are not paired with their shards yet: a
    release without them would silently drop files the dataset had, so the run is refused instead.
    Looked for where :func:`find_aligned` looks: ``*_emb`` folders and ``.npy`` files directly in the
    dataset's folder or its parent."""
    from expunge import storage

    base = storage.parse(root)
    fs = storage.filesystem(base)
    for where in (base, base.parent):
        with storage.storage_errors(where):
            try:
                entries = fs.ls(where.url, detail=True)
            except FileNotFoundError:
                continue
        for entry in entries:
            name = str(entry.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
            folder = entry.get("type") == "directory"
            if (folder and name.endswith("_emb")) or (not folder and name.endswith(".npy")):
                raise ExpungeError(
                    "embedding files (.npy) beside a dataset on object storage are not supported yet: "
                    "clean the dataset from a local copy",
                    where.redacted(),
                )


def _embeddings(shard: Shard, target: CleanTarget) -> list[tuple[EmbeddingFile, Path]]:
    """CLIP embedding files aligned with this metadata shard, and where each goes in the release.

    Beside the shard (``NAME.npy``) they stay beside it; in LAION's ``img_emb/`` and ``text_emb/`` folders
    they go to the same-named folder at the top of the release.
    """
    if not target.dataset_root or target.out_root is None:
        return []
    if is_url(shard.location):
        _refuse_remote_embeddings(target.dataset_root)
        return []
    found = []
    for emb in find_aligned(shard.location, target.dataset_root):
        folder = os.path.dirname(emb.path)
        if folder == os.path.dirname(shard.location):
            found.append((emb, target.out.parent / os.path.basename(emb.path)))
        else:
            found.append((emb, target.out_root / os.path.basename(folder) / os.path.basename(emb.path)))
    return found
