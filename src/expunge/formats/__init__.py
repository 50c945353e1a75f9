"""Dataset formats, one small module each: ``parquet`` (metadata shards), ``webdataset`` (image tars
with their companion parquet and stats, as img2dataset writes them) and ``imagefolder`` (plain folders
of image files, optionally with a metadata parquet naming them).

A :class:`Shard` is the unit of work whatever the format: its metadata parquet, its image tar, or both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from expunge.errors import ExpungeError
from expunge.formats import imagefolder, parquet, tar_scan, webdataset


@dataclass(frozen=True)
class Shard:
    name: str  # path relative to the dataset root: the shard's identity (the tar's name for tar shards)
    path: str | None  # metadata parquet
    tar: str | None = None  # image tar (webdataset / img2dataset)
    stats: str | None = None  # img2dataset's NNNNN_stats.json
    folder: str | None = None  # a plain folder of image files

    @property
    def files(self) -> list[str]:
        if self.folder:
            return imagefolder.content_files(self.folder, top=self.name == ".")
        return [p for p in (self.tar, self.path) if p]


def sample_keys(tar: str | None, folder: str | None) -> list[str]:
    """Sample keys of an image shard, in its own order."""
    if tar:
        return tar_scan.sample_keys(tar)
    if folder:
        return imagefolder.image_files(folder)
    return []


def iter_images(tar: str | None, folder: str | None) -> Iterator[tuple[int, str, bytes]]:
    """(sample index, key, image bytes) of an image shard, streaming."""
    if tar:
        return tar_scan.iter_images(tar)
    if folder:
        return imagefolder.iter_images(folder)
    return iter(())


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
    if imagefolder.has_images(specs):
        root, folders = imagefolder.discover_folders(specs)
        return root, [Shard(f.name, f.parquet, folder=f.path) for f in folders], "imagefolder"
    root, shards = parquet.discover(specs)
    return root, [Shard(s.name, s.path) for s in shards], "parquet"
