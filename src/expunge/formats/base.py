"""The dataset-format interface: everything the stages and the release need to know about a shard's format.

A format answers, for its own shards: does a dataset spec belong to me (:meth:`ShardFormat.claims`), which
shards does it hold (:meth:`~ShardFormat.discover`), which files are a shard's content identity, how many
rows it has and what a metadata column holds, which samples and image members it carries, how its cleaned
copy is written and which files that puts in the release, and how a release's copy is checked and labelled.
The stages only ever call these methods; nothing outside ``formats/`` branches on which format a shard is.

Every format here keeps a shard's rows in a metadata parquet (``Shard.metadata``), so the row methods have
parquet defaults; a format whose rows live elsewhere (a TSV file) overrides them. Formats are a lower layer:
they never import the stages, the pipeline, the API or the release code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from expunge import atomic
from expunge.formats import parquet
from expunge.formats.members import MemberData

Convert = Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class Shard:
    """The unit of work whatever the format; picklable, so tasks carry it to workers."""

    name: str  # path relative to the dataset root, '/'-separated: the shard's identity
    format: str  # the registry name of its format (see :mod:`expunge.formats.registry`)
    location: str  # absolute path of its main file or folder (the parquet, the tar, the image folder)
    metadata: str | None = None  # the file holding its rows, if any (the parquet itself for parquet shards)
    companions: tuple[str, ...] = ()  # other source files published with it (img2dataset's stats json)

    @property
    def handler(self) -> ShardFormat:
        from expunge.formats.registry import get

        return get(self.format)

    @property
    def files(self) -> list[str]:
        """The files whose bytes are the shard's content identity, in a fixed order."""
        return self.handler.content_files(self)


@dataclass(frozen=True)
class CleanTarget:
    """Where and how a shard's cleaned copy goes."""

    out: Path  # RELEASE/<shard name>: the main file's (or folder's) place in the release
    tmp_dir: Path
    out_root: Path | None = None  # the release folder
    dataset_root: str | None = None  # where companions such as aligned embeddings are looked for


@dataclass(frozen=True)
class CleanRows:
    """What leaves a shard: metadata rows (sorted) and, for image shards, the sample keys of those rows."""

    rows_in: int
    gone: list[int]
    drop_keys: frozenset[str] = field(default_factory=frozenset)
    key_column: str | None = None
    #: Metadata columns whose values at the ``gone`` rows the removal records need (URL, key). A format
    #: that reads them anyway while rewriting fills ``captured`` (column -> values in ``gone`` order),
    #: so the records do not read the shard a second time; one that does not leaves it empty.
    capture: tuple[str, ...] = ()
    captured: dict[str, pa.Array] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardOutputs:
    files: list[Path]  # every file the shard puts in the release
    main: list[Path]  # the subset whose SHA-256 (``content_sha256``) is the released shard's identity


def place(source: str, final: Path, tmp_dir: Path) -> str:
    """An exact copy of a shard at ``final``: hard-linked (or copied) from a local file, downloaded from a
    remote one (a remote release then copies the object server-side instead of sending these bytes;
    they are here so the manifest's hash is of the bytes published). Appears atomically either way."""
    from expunge.storage.location import is_remote

    if not is_remote(source):
        return atomic.copy_or_link(Path(source), final, tmp_dir)
    from expunge.storage.fs import download

    download(source, final, tmp_dir)
    return "copied"


class ShardFormat(ABC):
    """One dataset format. Subclasses set :attr:`name` and implement the abstract methods."""

    name: ClassVar[str]
    #: Tried last in discovery: it takes any spec no other format claims (today: parquet).
    fallback: ClassVar[bool] = False
    #: Shards carry samples (images) linked to rows: the index builds ``samples.parquet`` for them.
    has_images: ClassVar[bool] = False
    #: A dataset of this format without a URL column is refused (image formats can be checked by image).
    requires_url: ClassVar[bool] = False
    #: Removed rows without a metadata key are named by their sample key in the records (tar keys are
    #: stable names; a folder's file names are not keys).
    sample_key_names_row: ClassVar[bool] = False
    #: The ``encodingFormat`` of the shard in ``croissant.json``.
    media_type: ClassVar[str]

    # -- discovery ----------------------------------------------------------------------------------
    @abstractmethod
    def claims(self, specs: Sequence[str]) -> bool:
        """Whether these dataset specs are a dataset of this format (cheap: a walk, no reads)."""

    @abstractmethod
    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        """The dataset's root folder and its shards, in a fixed order."""

    def default_key_column(self, metadata: str) -> str | None:
        """The key column when none is given, or None to let column detection pick one."""
        return None

    def check_url_column(self, shard: Shard, column: str) -> None:
        """Refuse a shard whose URLs are not in the dataset's URL column (detected on one shard and used
        for all): reading another column as URLs would match nothing and publish every row."""
        return None

    def detect_columns(
        self,
        metadata: str,
        url: str | None = None,
        caption: str | None = None,
        key: str | None = None,
        *,
        require_url: bool = True,
    ) -> parquet.ColumnMap:
        """The URL, caption and key columns of the dataset whose first metadata file is ``metadata``."""
        return parquet.detect_columns(metadata, url, caption, key, require_url=require_url)

    def shard_media_type(self, shard: Shard) -> str:
        """The shard's ``encodingFormat`` in ``croissant.json`` (one format, several file types)."""
        return self.media_type

    def record_columns(self, shard: Shard) -> list[tuple[str, str]] | None:
        """(name, Arrow type) of the shard's metadata columns for croissant's record set, or None."""
        if not shard.metadata:
            return None
        return [(f.name, str(f.type)) for f in parquet.open_file(shard.metadata).schema_arrow]

    # -- identity and sources -----------------------------------------------------------------------
    @abstractmethod
    def content_files(self, shard: Shard) -> list[str]:
        """The files whose bytes are the shard's identity (hashed by the index, clean and verify)."""

    def source_paths(self, shard: Shard) -> list[str]:
        """Every source path the shard reads (none may lie inside the output folder)."""
        return [*self.content_files(shard), *shard.companions]

    def published_sources(self, shard: Shard) -> list[str]:
        """Every source file whose copy the release carries (checked against reserved release names)."""
        return [*self.content_files(shard), *shard.companions]

    # -- rows ---------------------------------------------------------------------------------------
    def rows(self, shard: Shard) -> int:
        """Rows of the shard's metadata (0 without metadata: rows are then the samples)."""
        return parquet.num_rows(shard.metadata) if shard.metadata else 0

    def column_names(self, shard: Shard) -> list[str]:
        return list(parquet.open_file(shard.metadata).schema_arrow.names) if shard.metadata else []

    def iter_column(self, shard: Shard, column: str) -> Iterator[pa.Array]:
        """A metadata column, batch by batch, in row order."""
        assert shard.metadata is not None
        return parquet.iter_column(shard.metadata, column)

    def iter_text(self, shard: Shard, column: str) -> Iterator[pa.Array]:
        """A text column (URLs) in a layout every kernel accepts (plain string or binary)."""
        assert shard.metadata is not None
        return parquet.iter_text(shard.metadata, column)

    def values_at(
        self,
        shard: Shard,
        column: str,
        rows: list[int],
        convert: Callable[[pa.Array], pa.Array] | None = None,
    ) -> list[Any]:
        """Values of one column at sorted row indices, streaming; rows past the metadata's end give None.

        ``convert``: read the column as text (:meth:`iter_text`) and map each batch through it first
        (URLs as bytes, for keyed hashes).
        """
        out: list[Any] = []
        wanted = np.array(rows, dtype=np.int64)
        start = 0
        for col in self.iter_text(shard, column) if convert else self.iter_column(shard, column):
            n = len(col)
            lo, hi = np.searchsorted(wanted, [start, start + n])
            if hi > lo:
                arr = convert(col) if convert else col
                out.extend(arr.take(pa.array(wanted[lo:hi] - start)).to_pylist())
            start += n
        out.extend([None] * (len(rows) - len(out)))
        return out

    # -- samples and images -------------------------------------------------------------------------
    def sample_keys(self, shard: Shard) -> list[str]:
        """The shard's sample keys in its own order (empty for formats without samples)."""
        return []

    def link_rows(self, shard: Shard, keys: Sequence[str], key_column: str) -> list[int]:
        """The metadata row of each sample; refuses (ExpungeError) a shard whose samples do not link."""
        raise NotImplementedError(f"{self.name} shards have no samples")

    def iter_members(self, shard: Shard) -> Iterator[MemberData]:
        """Every data-carrying member (:data:`MemberData`), by the sample index of :meth:`sample_keys`."""
        return iter(())

    # -- clean --------------------------------------------------------------------------------------
    @abstractmethod
    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        """The files the cleaned shard puts in the release (before it is written)."""

    @abstractmethod
    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        """Write the cleaned shard atomically; returns the action: "linked", "copied" or "rewritten"."""

    # -- release ------------------------------------------------------------------------------------
    @abstractmethod
    def owns_release_shard(self, release: Path, name: str) -> bool:
        """Whether the shard ``name`` of a release folder is of this format (verify has no other clue)."""

    @abstractmethod
    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        """A released shard's identity files and its row count (None: unknown, -1: unreadable)."""


def parquet_rows_or_unreadable(path: Path) -> int:
    """Rows of a parquet file; -1 when it cannot be read (a corrupt file is a problem, not a crash)."""
    try:
        return parquet.num_rows(str(path))
    except Exception:
        return -1
