"""A shard's feature values sorted, beside its index: so a list update probes the index, not scans it.

The daily list update adds values that match nothing. Scanning every row of every shard for them costs
time in proportion to the dataset; probing a sorted copy costs time in proportion to the values added.
For each single-valued column feature the first full match of a shard writes, next to the feature file:

- ``FEATURE.sorted-TAG.npy``: a structured array of (64-bit prefix, full value, row), sorted by prefix.

``TAG`` is the feature file's size and mtime, so a feature file rewritten by the index stage (the shard
changed) never pairs with an old sorted copy: it is simply absent and rebuilt. The file is a cache:
anything wrong with it (missing, unreadable) means the scan runs instead. It is memory-mapped, so a
probe reads only the pages its binary searches touch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from expunge import atomic
from expunge.matchers.exact import fixed_to_numpy, prefix64


def _dtype(width: int) -> np.dtype[np.void]:
    return np.dtype([("p", "<u8"), ("v", f"S{width}"), ("r", "<i8")])


def _path(feature_file: Path) -> Path | None:
    try:
        st = feature_file.stat()
    except FileNotFoundError:
        return None
    return feature_file.with_name(f"{feature_file.stem}.sorted-{st.st_size}-{st.st_mtime_ns}.npy")


def stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")``, at a quarter of its cost on distinct keys: numpy's default
    sort of 64-bit integers is a SIMD quicksort, several times faster than its stable (merge) sort, and
    only runs of equal keys need their positions put back in ascending order. The file must not change
    with the sort used, so ties are resolved exactly as the stable sort resolves them."""
    order = np.argsort(keys)
    if len(order) < 2:
        return order
    ranked = keys[order]
    tie = ranked[1:] == ranked[:-1]
    if not tie.any():
        return order
    in_run = np.zeros(len(order), dtype=bool)
    in_run[1:] = tie
    in_run[:-1] |= tie
    pos = np.flatnonzero(in_run)  # every member of every run of equal keys; runs stay where they are
    sub = order[pos]
    order[pos] = sub[np.lexsort((sub, ranked[pos]))]
    return order


def write(feature_file: Path, column: pa.Array, width: int, tmp_dir: Path | None = None) -> None:
    """Write the sorted copy of a single-valued column (nulls left out); drop stale ones."""
    path = _path(feature_file)
    if path is None or path.is_file():
        return
    values, valid = fixed_to_numpy(column, width)
    rows = np.flatnonzero(valid)
    prefix = prefix64(values, width)
    if len(rows) < len(values):
        prefix = prefix[rows]
    order = stable_order(prefix)
    source = rows[order]  # the row of each entry, in table order
    table = np.empty(len(order), dtype=_dtype(width))
    # Gathered straight into the table's fields: no sorted temporaries to copy in (mode="clip" skips
    # numpy's buffering of ``out``; every index is in range).
    np.take(prefix, order, out=table["p"], mode="clip")
    np.take(values, source, out=table["v"], mode="clip")
    table["r"] = source
    for old in feature_file.parent.glob(f"{feature_file.stem}.sorted-*.npy"):
        if old != path:
            old.unlink(missing_ok=True)
    with atomic.atomic_path(path, tmp_dir) as tmp, open(tmp, "wb") as fh:
        np.save(fh, table, allow_pickle=False)


_LAST: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []


def _query(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The delta's distinct values and their prefixes, computed once for every shard it is probed in."""
    if _LAST and _LAST[0][0] is values:
        return _LAST[0][1], _LAST[0][2]
    query = np.ascontiguousarray(values)
    # A bank's delta arrives sorted and distinct; ``np.unique`` (a hash pass) would cost 50 ms on 100k.
    if len(query) > 1 and not bool(np.all(query[1:] > query[:-1])):
        query = np.unique(query)
    qp = prefix64(query, width)
    _LAST[:] = [(values, query, qp)]
    return query, qp


def probe(feature_file: Path, values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows whose value is one of ``values`` (``S{width}``), and the value each matched; None when there
    is no current sorted copy (the caller scans). Exact: prefixes find candidates, full values confirm."""
    path = _path(feature_file)
    if path is None or not path.is_file():
        return None
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if table.dtype != _dtype(width):
        return None
    if len(table) == 0 or len(values) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=f"S{width}")
    query, qp = _query(values, width)
    # One contiguous copy of the prefixes: searching the strided column directly makes numpy copy it
    # for every search. Most queries match nothing, so only those whose prefix is there get a second
    # search for the end of their run.
    prefixes = np.ascontiguousarray(table["p"])
    lo = np.searchsorted(prefixes, qp, "left")
    some = np.flatnonzero(prefixes[np.minimum(lo, len(prefixes) - 1)] == qp)
    if not some.size:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=f"S{width}")
    counts = np.searchsorted(prefixes, qp[some], "right") - lo[some]
    # Every candidate position, and the query value it must equal (prefixes can collide).
    starts = np.repeat(lo[some] - np.cumsum(counts) + counts, counts)
    pos = starts + np.arange(int(counts.sum()))
    want = np.repeat(query[some], counts)
    got = table[pos]
    ok = got["v"] == want
    rows = np.asarray(got["r"][ok], dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], np.asarray(want[ok][order])
