"""``checksummed_parquet``: parquet shards that each ship a ``NAME.parquet.sha256`` checksum file.

Mirrors and crawls often publish a ``sha256sum`` line beside every shard. Rows live in the parquet, so
the row methods of :class:`~expunge.formats.base.ShardFormat` serve as they are; this format adds what
differs: it claims a dataset whose every shard has a checksum file, refuses a shard whose bytes do not
match it (fail closed: a damaged download is not cleaned and published), and writes the cleaned
shard's checksum file for the bytes the release holds.
"""

from __future__ import annotations

import hashlib
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
)

SUFFIX = ".sha256"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _checksum_line(path: Path) -> bytes:
    """What ``sha256sum NAME`` prints, so ``sha256sum -c`` checks the release too."""
    return f"{_sha256(path)}  {path.name}\n".encode()


class ChecksummedParquet(ShardFormat):
    name = "checksummed_parquet"
    media_type = "application/x-parquet"
    requires_url = True

    def _parquet(self, specs: Sequence[str]) -> tuple[str, list[parquet.Shard]]:
        try:
            return parquet.discover(specs)
        except ExpungeError:
            return "", []

    def claims(self, specs: Sequence[str]) -> bool:
        _, found = self._parquet(specs)
        return bool(found) and all(os.path.isfile(s.path + SUFFIX) for s in found)

    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        root, found = parquet.discover(specs)
        shards = []
        for s in found:
            listed = Path(s.path + SUFFIX).read_bytes().split(maxsplit=1)[:1]
            if listed != [_sha256(Path(s.path)).encode()]:
                raise ExpungeError("shard does not match its .sha256 checksum file", s.path)
            shards.append(Shard(s.name, self.name, s.path, s.path, (s.path + SUFFIX,)))
        return root, shards

    def content_files(self, shard: Shard) -> list[str]:
        return [shard.location]

    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        return ShardOutputs([target.out, _sidecar(target.out)], [target.out])

    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        if not rows.gone:
            action = atomic.copy_or_link(Path(shard.location), target.out, target.tmp_dir)
            atomic.copy_or_link(Path(shard.companions[0]), _sidecar(target.out), target.tmp_dir)
            return action
        keep = np.ones(rows.rows_in, dtype=bool)
        keep[rows.gone] = False
        with atomic.atomic_path(target.out, target.tmp_dir) as tmp:
            written = parquet.rewrite(shard.location, tmp, keep)
            if written != int(keep.sum()):
                raise RuntimeError(f"{shard.name}: wrote {written} rows, expected {int(keep.sum())}")
        atomic.write_bytes(_sidecar(target.out), _checksum_line(target.out), target.tmp_dir)
        return "rewritten"

    def owns_release_shard(self, release: Path, name: str) -> bool:
        return name.endswith(parquet.SUFFIXES) and (release / (name + SUFFIX)).is_file()

    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        main = release / name
        return [str(main)], parquet_rows_or_unreadable(main) if main.is_file() else None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)
