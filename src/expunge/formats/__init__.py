"""Dataset formats, one small module each: ``parquet`` (metadata shards) and ``webdataset`` (image tars
with their companion parquet and stats, as img2dataset writes them).

A :class:`Shard` is the unit of work whatever the format: its metadata parquet, its image tar, or both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from expunge.errors import ExpungeError
from expunge.formats import parquet, webdataset


@dataclass(frozen=True)
class Shard:
    name: str  # path relative to the dataset root: the shard's identity (the tar's name for tar shards)
    path: str | None  # metadata parquet
    tar: str | None = None  # image tar (webdataset / img2dataset)
    stats: str | None = None  # img2dataset's NNNNN_stats.json

    @property
    def files(self) -> list[str]:
        return [p for p in (self.tar, self.path) if p]


def _has_tars(specs: Sequence[str]) -> bool:
    for spec in specs:
        spec = spec.removeprefix("file://")
        if spec.endswith(".tar"):
            return True
        if os.path.isdir(spec):
            for _dirpath, dirnames, filenames in os.walk(spec):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                if any(f.endswith(".tar") and not f.startswith((".", "_")) for f in filenames):
                    return True
    return False


def discover(specs: Sequence[str]) -> tuple[str, list[Shard], str]:
    """Shards of a dataset and its kind: ``webdataset`` when image tars are present, else ``parquet``."""
    if not specs:
        raise ExpungeError("no dataset given")
    if _has_tars(specs):
        root, tars = webdataset.discover_tars(specs)
        return root, [Shard(t.name, t.parquet, t.path, t.stats) for t in tars], "webdataset"
    root, shards = parquet.discover(specs)
    return root, [Shard(s.name, s.path) for s in shards], "parquet"
