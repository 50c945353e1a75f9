"""The index stage's per-shard task: read the URL column once, store compact per-row features.

Per shard the index holds ``rows.parquet`` (one quarantine code per row) and one parquet file per
feature (binary digests, never hex, never the URL). A shard is re-read only when its content changes
or a new list needs a feature it does not have yet; then only the missing features are computed.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.formats import parquet as pqfmt
from expunge.signals import feature_width
from expunge.signals.features import QUARANTINE_REASONS, UrlBatch

ROWS_FILE = "rows.parquet"


def feature_file(feature: str) -> str:
    return feature.replace(":", "_") + ".parquet"


@dataclass(frozen=True)
class IndexTask:
    shard_name: str
    shard_path: str
    url_column: str
    index_dir: str  # this shard's folder in the store
    tmp_dir: str
    features: tuple[str, ...]  # features to compute now
    rows_needed: bool  # (re)compute rows.parquet
    known_sha256: str | None  # when set and the content still hashes to it, nothing is recomputed
    all_features: tuple[str, ...] = ()  # what to compute if the content turns out to have changed


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


def index_shard(task: IndexTask) -> IndexResult:
    started = time.perf_counter()
    st = os.stat(task.shard_path)
    sha = pqfmt.file_sha256(task.shard_path)
    features, rows_needed = task.features, task.rows_needed
    if task.known_sha256 is not None:
        if sha == task.known_sha256 and not features and not rows_needed:
            return IndexResult(task.shard_name, st.st_size, st.st_mtime_ns, sha, -1, [], {}, False)
        if sha != task.known_sha256:
            features, rows_needed = task.all_features, True
    out_dir = Path(task.index_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(task.tmp_dir)
    writers: dict[str, pq.ParquetWriter] = {}
    tmp_paths: dict[str, Path] = {}
    names = ([ROWS_FILE] if rows_needed else []) + [feature_file(f) for f in features]
    counts = np.zeros(256, dtype=np.int64)
    rows = 0
    with contextlib.ExitStack() as stack:
        for name in names:
            ctx = atomic.atomic_path(out_dir / name, tmp_dir)
            tmp_paths[name] = stack.enter_context(ctx)
        try:
            for urls in pqfmt.iter_column(task.shard_path, task.url_column):
                batch = UrlBatch(urls)
                rows += len(batch)
                columns: dict[str, pa.Array] = {}
                if rows_needed:
                    q = batch.quarantine
                    counts += np.bincount(q, minlength=256)
                    columns[ROWS_FILE] = pa.array(q, pa.uint8())
                for f in features:
                    columns[feature_file(f)] = batch.feature(f)
                for name, arr in columns.items():
                    writer = writers.get(name)
                    if writer is None:
                        schema = pa.schema([("q" if name == ROWS_FILE else "v", arr.type)])
                        writer = pq.ParquetWriter(tmp_paths[name], schema, compression="none")
                        writers[name] = writer
                    writer.write_table(pa.table([arr], schema=writer.schema))
            for name in names:
                if name not in writers:  # empty shard: still leave a valid, empty file
                    empty_type = pa.uint8() if name == ROWS_FILE else _feature_type(name, features)
                    col = "q" if name == ROWS_FILE else "v"
                    pq.write_table(pa.table({col: pa.array([], empty_type)}), tmp_paths[name])
        finally:
            for writer in writers.values():
                writer.close()
    quarantined = {QUARANTINE_REASONS[c]: int(counts[c]) for c in QUARANTINE_REASONS if counts[c]}
    return IndexResult(
        task.shard_name,
        st.st_size,
        st.st_mtime_ns,
        sha,
        rows,
        list(features),
        quarantined,
        True,
        time.perf_counter() - started,
    )


def _feature_type(name: str, features: tuple[str, ...]) -> pa.DataType:
    from expunge.signals import feature_is_multi

    for f in features:
        if feature_file(f) == name:
            width = feature_width(f)
            return pa.list_(pa.binary(width)) if feature_is_multi(f) else pa.binary(width)
    raise KeyError(name)


def read_quarantine(index_dir: Path) -> np.ndarray:
    col = pq.read_table(index_dir / ROWS_FILE).column(0)
    return np.asarray(col.to_numpy(), dtype=np.uint8)


def read_feature(index_dir: Path, feature: str) -> pa.Array:
    return pq.read_table(index_dir / feature_file(feature)).column(0).combine_chunks()
