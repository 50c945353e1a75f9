"""Vectorised digests of Arrow binary arrays (DuckDB's C++ md5/sha1/sha256 over zero-copy Arrow).

Hashing is the hot path of indexing: a per-row ``hashlib`` loop costs a Python call per URL, while
DuckDB hashes a whole batch in C++ with one call. One single-threaded connection per process keeps
parallelism under the executor's control (one worker per core).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pyarrow as pa

from expunge.features.base import WIDTHS

if TYPE_CHECKING:
    import duckdb

_local = threading.local()


def _con() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb  # here, not at import: a run whose index is current never hashes (0.2 s saved)

        con = duckdb.connect(config={"threads": 1})
        _local.con = con
    return con


def as_binary(values: pa.Array) -> pa.Array:
    """Zero-copy view of a string array as binary (digests are of the stored bytes)."""
    if pa.types.is_string(values.type):
        return values.view(pa.binary())
    if pa.types.is_large_string(values.type):
        return values.view(pa.large_binary())
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.binary())
    return values


def digest_array(values: pa.Array, algo: str) -> pa.Array:
    """``algo`` digest of each value as ``fixed_size_binary``; null stays null."""
    width = WIDTHS[algo]
    if len(values) == 0:
        return pa.array([], pa.binary(width))
    con = _con()
    con.register("expunge_digest_input", pa.table({"v": as_binary(values)}))
    try:
        out = con.sql(f"SELECT unhex({algo}(v)) AS h FROM expunge_digest_input").to_arrow_table()
    finally:
        con.unregister("expunge_digest_input")
    return out.column(0).combine_chunks().cast(pa.binary(width))
