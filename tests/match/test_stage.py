"""Findings are stored once per (row, bank, value), nearest first, in a stable order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from expunge.match.stage import FINDINGS_SCHEMA, _dedupe_sorted


def test_dedupe_keeps_one_finding_per_key_with_the_smallest_distance() -> None:
    rows = [3, 1, 3, 3, 1, 2]
    banks = ["b", "a", "b", "b", "a", "a"]
    values = [b"x", b"y", b"x", b"z", b"y", b"y"]
    dist = [5.0, None, 2.0, 1.0, None, 0.0]
    table = pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "bank": banks,
            "bank_version": pa.array([1] * 6, pa.int32()),
            "signal": ["pdq"] * 6,
            "value": pa.array(values, pa.binary()),
            "distance": pa.array(dist, pa.float32()),
            "score": pa.nulls(6, pa.float32()),
        },
        schema=FINDINGS_SCHEMA,
    )
    out = _dedupe_sorted(table)
    cols = [out.column(c).to_pylist() for c in ("row", "bank", "value", "distance")]
    got = list(zip(*cols, strict=True))
    assert got == [(1, "a", b"y", None), (2, "a", b"y", 0.0), (3, "b", b"x", 2.0), (3, "b", b"z", 1.0)]
    assert _dedupe_sorted(out).equals(out)
    assert np.all(np.diff(out.column("row").to_numpy()) >= 0)
