"""Dataset formats behind one interface (:class:`~expunge.formats.base.ShardFormat`), one module each:
``parquet_shards`` (metadata parquet shards, with aligned embeddings), ``webdataset`` (image tars with
their companion parquet and stats, as img2dataset writes them) and ``imagefolder`` (plain folders of image
files, optionally with a metadata parquet naming them); :mod:`~expunge.formats.registry` knows them all.

A :class:`Shard` is the unit of work whatever the format; it names its format, and every question about
it goes to that format (``shard.handler``).
"""

from __future__ import annotations

from expunge.formats.base import Shard, ShardFormat
from expunge.formats.registry import discover, get, register

__all__ = ["Shard", "ShardFormat", "discover", "get", "register"]
