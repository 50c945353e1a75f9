"""The index stage's per-shard task: read each needed column once, store compact per-row features.

Per shard the index holds ``rows.parquet`` (one quarantine code per row, from the URL column) and one
parquet file per feature (binary digests, never hex, never the URL or caption). Features are grouped
by their kind's source column role (:attr:`expunge.features.base.FeatureKind.source`); each role's
column is read once, through the shard's format, and every kind computes its values from the same
batches. A shard is re-read only when its content changes or a new list needs a feature it does not
have yet; then only the missing features are computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import read_parquet
from expunge.config import MAX_PIXELS
from expunge.errors import ExpungeError
from expunge.features.base import IMAGE_SOURCE, Feature, parse_feature
from expunge.features.url import QUARANTINE_REASONS, UrlBatch
from expunge.formats import Shard
from expunge.formats import parquet as pqfmt
from expunge.formats.paths import is_url

# Signal modules (built-in and plug-in) register the feature kinds they bring: importing the registry
# makes every stored feature name parse in this process too (workers start fresh).
from expunge.signals import registry as _signals  # noqa: F401
from expunge.storage.fs import ObjectStat
from expunge.storage.fs import stat as storage_stat

ROWS_FILE = "rows.parquet"
SAMPLES_FILE = "samples.parquet"


# The layout of a shard's index files. Bump it when their meaning changes: a store indexed under another
# value is re-indexed in full rather than read under the wrong rules. 2: one images.parquet line per
# member of every sample, and samples.parquet without made-up rows for unlinked samples.
INDEX_FORMAT = 2


def feature_file(feature: str) -> str:
    return parse_feature(feature).file


@dataclass(frozen=True)
class IndexTask:
    shard: Shard
    url_column: str | None
    index_dir: str  # this shard's folder in the store
    tmp_dir: str
    features: tuple[str, ...]  # features to compute now
    rows_needed: bool  # (re)compute rows.parquet (and samples.parquet for tar shards)
    known_sha256: str | None  # when set and the content still hashes to it, nothing is recomputed
    all_features: tuple[str, ...] = ()  # what to compute if the content turns out to have changed
    key_column: str | None = None  # links tar samples to metadata rows
    dihedral: bool = False
    max_pixels: int = MAX_PIXELS
    caption_column: str | None = None  # what the ``caption`` role resolves to (None: the dataset has none)

    @property
    def shard_name(self) -> str:
        return self.shard.name

    def column(self, role: str) -> str | None:
        """The dataset column a feature source role resolves to (None: the dataset has no such column)."""
        return {"url": self.url_column, "caption": self.caption_column}.get(role)


@dataclass
class IndexResult:
    shard_name: str
    size: int
    mtime_ns: int
    sha256: str
    rows: int
    features: list[str] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    content_changed: bool = True
    seconds: float = 0.0
    images: int = 0
    image_errors: dict[str, int] = field(default_factory=dict)
    orphans: int = 0


def fingerprint(paths: list[str]) -> tuple[int, int]:
    """Size and newest mtime of a shard's files: the cheap check before any hashing.

    A remote object's mtime is not a content signal (and reading it to hash would download it): for
    shards with URLs the second field is a stable 63-bit integer derived from each object's content tag
    (its ETag), from one metadata request per object, so that a rewritten object changes it.
    """
    if not any(is_url(p) for p in paths):
        stats = [os.stat(p) for p in paths]
        return sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats)
    return _remote_fingerprint([storage_stat(p) for p in paths])


def _remote_fingerprint(stats: list[ObjectStat]) -> tuple[int, int]:
    signals = []
    for st in stats:
        signal = st.tag or st.modified
        if signal is None:
            # Nothing tells a change: never look unchanged, so the shard's identity is checked.
            return sum(x.size for x in stats), time.time_ns()
        signals.append(signal)
    digest = hashlib.sha256("\0".join(signals).encode()).digest()
    return sum(x.size for x in stats), int.from_bytes(digest[:8], "big") >> 1


def content_sha256(paths: list[str]) -> str:
    """One file: its SHA-256 (what a release manifest lists). Several: a hash of their hashes.

    Remote files are streamed (read whole, never held whole): this is the manifest's hash, not the
    index's identity of a remote shard (see :func:`shard_identity`).
    """
    digests = [pqfmt.file_sha256(p) for p in paths]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256(":".join(digests).encode()).hexdigest()


#: How a remote shard's identity starts (``etag:<ETag>:<size>``): never 64 hex digits, so it cannot be
#: taken for a SHA-256 and copied into a manifest.
REMOTE_IDENTITY_PREFIX = "etag:"


def is_sha256(identity: str) -> bool:
    """Whether an index identity is a content SHA-256 (local shards), as opposed to a remote tag."""
    return len(identity) == 64 and all(c in "0123456789abcdef" for c in identity)


def shard_identity(paths: list[str], stats: list[ObjectStat] | None = None) -> str:
    """What the index records as a shard's ``sha256``: its content identity, read as cheaply as it is
    trustworthy.

    - Local files: :func:`content_sha256` (unchanged).
    - Remote: ``etag:<ETag>:<size>`` for one object, from one HEAD, without reading it (the index stage
      of a remote shard reads the URL column's pages only). Several files, any remote:
      ``etag:<sha256 of their identities joined by ':'>:<total size>``. A backend that reports no
      content tag (fsspec's memory filesystem) gets the object's real SHA-256 instead, streamed.

    The clean stage recomputes this with the same function (one HEAD per object) to confirm the source
    it rewrites is the one that was indexed; the manifest's SHA-256 is computed from the bytes the
    clean stage reads or copies, never taken from an ``etag:`` identity.
    """
    if not any(is_url(p) for p in paths):
        return content_sha256(paths)
    if stats is None:
        stats = [storage_stat(p) if is_url(p) else ObjectStat(0, None, None) for p in paths]
    parts: list[str] = []
    for p, st in zip(paths, stats, strict=True):
        if is_url(p) and st.tag is not None:
            parts.append(f"{REMOTE_IDENTITY_PREFIX}{st.tag}:{st.size}")
        else:
            parts.append(pqfmt.file_sha256(p))
    if len(parts) == 1:
        return parts[0]
    if all(is_sha256(x) for x in parts):
        return hashlib.sha256(":".join(parts).encode()).hexdigest()
    total = sum(st.size if is_url(p) else os.path.getsize(p) for p, st in zip(paths, stats, strict=True))
    joined = hashlib.sha256(":".join(parts).encode()).hexdigest()
    return f"{REMOTE_IDENTITY_PREFIX}{joined}:{total}"


def _identify(paths: list[str]) -> tuple[int, int, str]:
    """Fingerprint and identity together: one HEAD per remote object for both."""
    if not any(is_url(p) for p in paths):
        size, mtime = fingerprint(paths)
        return size, mtime, content_sha256(paths)
    stats = [storage_stat(p) for p in paths]
    size, mtime = _remote_fingerprint(stats)
    return size, mtime, shard_identity(paths, stats)


def index_shard(task: IndexTask) -> IndexResult:
    started = time.perf_counter()
    fmt = task.shard.handler
    files = fmt.content_files(task.shard)
    size, mtime, sha = _identify(files)
    features, rows_needed = task.features, task.rows_needed
    if task.known_sha256 is not None:
        if sha == task.known_sha256 and not features and not rows_needed:
            return IndexResult(task.shard_name, size, mtime, sha, -1, [], {}, False)
        if sha != task.known_sha256:
            features, rows_needed = task.all_features, True
    out_dir = Path(task.index_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(task.tmp_dir)
    by_source: dict[str, list[Feature]] = {}
    for name in features:
        f = parse_feature(name)
        by_source.setdefault(f.source, []).append(f)
    image_features = by_source.pop(IMAGE_SOURCE, [])
    result = IndexResult(task.shard_name, size, mtime, sha, -1, list(features))
    orphans = 0
    has_images = fmt.has_images
    if rows_needed and has_images:
        orphans = _index_samples(task, out_dir, tmp_dir)
        result.orphans = orphans
    if rows_needed or by_source:
        q = _index_columns(task, out_dir, tmp_dir, by_source, rows_needed)
        if rows_needed:
            q = np.concatenate([q, np.zeros(orphans, dtype=np.uint8)])
            with atomic.atomic_path(out_dir / ROWS_FILE, tmp_dir) as tmp:
                pq.write_table(pa.table({"q": pa.array(q, pa.uint8())}), tmp, compression="none")
            counts = np.bincount(q, minlength=256)
            result.quarantined = {
                QUARANTINE_REASONS[c]: int(counts[c]) for c in QUARANTINE_REASONS if counts[c]
            }
            result.rows = len(q)
    if image_features:
        if not has_images:
            raise ExpungeError("image lists need images (tar shards or image folders)", task.shard.metadata)
        rows_of_sample = read_parquet(out_dir / SAMPLES_FILE, columns=["row"]).column("row").to_pylist()
        from expunge.index.images import IMAGES_FILE, index_images

        with atomic.atomic_path(out_dir / IMAGES_FILE, tmp_dir) as tmp:
            members = fmt.iter_members(task.shard)
            source = task.shard.location
            n, errors, _ = index_images(
                members,
                tmp,
                rows_of_sample,
                dihedral=task.dihedral,
                max_pixels=task.max_pixels,
                source=source,
            )
        result.images = n
        result.image_errors = errors
    # A remote object can be replaced between the HEAD that named it and the ranged reads that indexed
    # it; a second HEAD catches that, so features are never filed under another object's identity.
    worked = rows_needed or by_source or image_features
    if worked and any(is_url(p) for p in files) and _identify(files)[2] != sha:
        raise ExpungeError("shard changed while it was being indexed; run again", task.shard_name)
    result.seconds = time.perf_counter() - started
    return result


def _index_samples(task: IndexTask, out_dir: Path, tmp_dir: Path) -> int:
    """Sample keys of the shard in order, with the metadata row each belongs to.

    With metadata, every sample must link to exactly one row (the formats' ``link_rows`` refuse the
    shard otherwise), so no sample is ever published beside a removed row; rows without a sample are
    fine. Without metadata the samples are the rows. Returns how many rows were added past the
    metadata's end: none, since a sample without a row is refused rather than given one.
    """
    shard, fmt = task.shard, task.shard.handler
    keys = fmt.sample_keys(shard)
    if shard.metadata and not task.key_column:
        raise ExpungeError(
            "no key column links the tar's samples to this metadata (set --key-column)", shard.metadata
        )
    if shard.metadata and task.key_column:
        rows = fmt.link_rows(shard, keys, task.key_column)
    else:
        rows = list(range(len(keys)))
    table = pa.table(
        {
            "sample": pa.array(np.arange(len(keys), dtype=np.int64)),
            "key": pa.array(keys, pa.string()),
            "row": pa.array(rows, pa.int64()),
        }
    )
    with atomic.atomic_path(out_dir / SAMPLES_FILE, tmp_dir) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return 0


def _batched(arrays: Iterator[pa.Array], rows: int = 1 << 17) -> Iterator[pa.Array]:
    """Row groups merged into batches of at least ``rows``: per-call costs (DuckDB, Arrow kernels) are
    paid per batch, and small row groups would pay them many times over."""
    pending: list[pa.Array] = []
    count = 0
    for arr in arrays:
        pending.append(arr)
        count += len(arr)
        if count >= rows:
            yield pa.concat_arrays(pending)
            pending, count = [], 0
    if pending:
        yield pa.concat_arrays(pending)


# How a role is named in a refusal (the option that sets its column is ``--ROLE-column``).
_ROLE_LABEL = {"url": "URL"}


def _index_columns(
    task: IndexTask, out_dir: Path, tmp_dir: Path, by_source: dict[str, list[Feature]], rows_needed: bool
) -> np.ndarray:
    """Read each needed column once and write every feature of it; returns the rows' quarantine codes
    (from the URL column when ``rows_needed``: quarantine is about URLs, whatever the lists).

    A row whose caption (or other non-URL source) is null yields a null value, which no list matches:
    it is not quarantined for it.
    """
    shard, fmt = task.shard, task.shard.handler
    if not shard.metadata:  # images on their own: rows are the samples, all checkable by image
        n = len(read_parquet(out_dir / SAMPLES_FILE, columns=["sample"])) if fmt.has_images else 0
        return np.zeros(n, dtype=np.uint8)
    for role, needed in by_source.items():
        if needed and task.column(role) is None:
            label = _ROLE_LABEL.get(role, role)
            raise ExpungeError(f"{label} lists need a {label} column (set --{role}-column)", shard.metadata)
    q: np.ndarray | None = None
    roles = sorted(by_source, key=lambda r: (r != "url", r))
    if rows_needed and "url" not in by_source and task.url_column is not None:
        roles.insert(0, "url")
    for role in roles:
        column = task.column(role)
        assert column is not None
        quarantine = rows_needed and role == "url"
        if role == "url":
            shard.handler.check_url_column(shard, column)
        qs = _index_column(task, column, by_source.get(role, []), out_dir, tmp_dir, quarantine)
        if quarantine:
            q = np.concatenate(qs) if qs else np.zeros(0, dtype=np.uint8)
    if q is None:
        q = np.zeros(fmt.rows(shard) if rows_needed else 0, dtype=np.uint8)
    return q


def _index_column(
    task: IndexTask,
    column: str,
    features: list[Feature],
    out_dir: Path,
    tmp_dir: Path,
    quarantine: bool,
) -> list[np.ndarray]:
    """Stream one column: every feature of it, and the URL quarantine codes when asked."""
    shard, fmt = task.shard, task.shard.handler
    writers: dict[str, pq.ParquetWriter] = {}
    tmp_paths: dict[str, Path] = {}
    qs: list[np.ndarray] = []
    with contextlib.ExitStack() as stack:
        for f in features:
            tmp_paths[f.file] = stack.enter_context(atomic.atomic_path(out_dir / f.file, tmp_dir))
        try:
            for values in _batched(fmt.iter_text(shard, column)):
                wrapped: dict[Any, Any] = {}  # one wrapper per batch type: derived forms computed once
                if quarantine:
                    wrapped[UrlBatch] = UrlBatch(values)
                    qs.append(wrapped[UrlBatch].quarantine)
                for f in features:
                    kind = f.spec
                    if kind.batch_type not in wrapped:
                        wrapped[kind.batch_type] = kind.batch_type(values)
                    arr = kind.values(wrapped[kind.batch_type], f)
                    writer = writers.get(f.file)
                    if writer is None:
                        writer = pq.ParquetWriter(
                            tmp_paths[f.file], pa.schema([("v", arr.type)]), compression="none"
                        )
                        writers[f.file] = writer
                    writer.write_table(pa.table([arr], schema=writer.schema))
            for f in features:
                if f.file not in writers:  # empty shard: still leave a valid, empty file
                    pq.write_table(pa.table({"v": pa.array([], f.value_type)}), tmp_paths[f.file])
        finally:
            for writer in writers.values():
                writer.close()
    return qs


def read_quarantine(index_dir: Path) -> np.ndarray:
    col = read_parquet(index_dir / ROWS_FILE).column(0)
    return np.asarray(col.to_numpy(), dtype=np.uint8)


def read_feature(index_dir: Path, feature: str) -> pa.Array:
    return read_parquet(index_dir / feature_file(feature)).column(0).combine_chunks()
