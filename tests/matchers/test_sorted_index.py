"""The sorted copy of a shard's feature: a delta probe finds exactly what a scan finds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.matchers import sorted_index
from expunge.matchers.exact import SortedSet, match_column


def _column(values: list[bytes | None], width: int) -> pa.Array:
    return pa.array(values, pa.binary(width))


def _feature(tmp: Path, column: pa.Array) -> Path:
    path = tmp / "url_raw_md5.parquet"
    pq.write_table(pa.table({"v": column}), path)
    return path


def _scan(column: pa.Array, query: np.ndarray, width: int) -> tuple[list[int], list[bytes]]:
    rows, values = match_column(column, width, SortedSet.build(np.unique(query)))
    return rows.tolist(), values.tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.binary(min_size=16, max_size=16)), max_size=60),
    st.lists(st.binary(min_size=16, max_size=16), max_size=20),
    st.data(),
)
def test_probe_equals_scan(tmp_path_factory, rows, extra, data) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("si")
    # Values sharing an 8-byte prefix with others, and repeated values, are the cases a prefix search
    # could get wrong.
    present = [v for v in rows if v is not None]
    if present:
        base = data.draw(st.sampled_from(present))
        rows = [*rows, base[:8] + b"\x00" * 8, base]
    column = _column(rows, 16)
    feature = _feature(tmp, column)
    sorted_index.write(feature, column, 16)
    query = np.array(list({*extra, *present[: len(present) // 2]}) or [b"\x00" * 16], dtype="S16")
    got = sorted_index.probe(feature, query, 16)
    assert got is not None
    assert (got[0].tolist(), got[1].tolist()) == _scan(column, query, 16)


def test_a_rewritten_feature_file_never_pairs_with_an_old_copy(tmp_path: Path) -> None:
    a = _column([b"a" * 16, b"b" * 16], 16)
    feature = _feature(tmp_path, a)
    sorted_index.write(feature, a, 16)
    assert sorted_index.probe(feature, np.array([b"a" * 16], dtype="S16"), 16) is not None
    b = _column([b"c" * 16, b"a" * 16], 16)  # the shard changed: the index stage rewrote the feature
    pq.write_table(pa.table({"v": b}), feature)
    os.utime(feature, ns=(1, 1))
    assert sorted_index.probe(feature, np.array([b"a" * 16], dtype="S16"), 16) is None  # the scan runs
    sorted_index.write(feature, b, 16)
    rows, _ = sorted_index.probe(feature, np.array([b"a" * 16], dtype="S16"), 16) or ([], [])
    assert list(rows) == [1]
    assert len(list(tmp_path.glob("*.sorted-*.npy"))) == 1  # the stale copy is gone


def test_a_damaged_copy_means_a_scan(tmp_path: Path) -> None:
    a = _column([b"a" * 16], 16)
    feature = _feature(tmp_path, a)
    sorted_index.write(feature, a, 16)
    (copy,) = tmp_path.glob("*.sorted-*.npy")
    copy.write_bytes(b"not a numpy file")
    assert sorted_index.probe(feature, np.array([b"a" * 16], dtype="S16"), 16) is None
