"""The sorted copy of a shard's feature: a delta probe finds exactly what a scan finds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
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


@pytest.mark.parametrize("n", [0, 1, 7, 5_000])
def test_the_bucket_table_is_the_one_a_search_per_bucket_gives(n: int) -> None:
    """SortedSet's bucket starts come from one counting pass now: the same table as a search per bucket."""
    from expunge.matchers.exact import prefix64

    rng = np.random.default_rng(n)
    values = np.unique(rng.integers(0, 256, (n, 16), dtype=np.uint8).view("S16").ravel())
    table = SortedSet.build(values)
    prefix = prefix64(values, 16)
    buckets = len(table.starts) - 1
    want = np.append(np.searchsorted(prefix, np.arange(buckets, dtype=np.uint64) << table.shift), len(prefix))
    assert np.array_equal(table.starts, want)


def test_one_delta_is_prepared_once_for_every_shard(tmp_path: Path) -> None:
    a = _column([b"a" * 16, b"b" * 16, None], 16)
    feature = _feature(tmp_path, a)
    sorted_index.write(feature, a, 16)
    delta = np.array([b"b" * 16, b"b" * 16, b"z" * 16], dtype="S16")
    first = sorted_index.probe(feature, delta, 16)
    again = sorted_index.probe(feature, delta, 16)  # the same array: its distinct values are reused
    other = sorted_index.probe(feature, np.array([b"a" * 16], dtype="S16"), 16)
    assert first is not None and again is not None and other is not None
    assert first[0].tolist() == again[0].tolist() == [1] and other[0].tolist() == [0]
