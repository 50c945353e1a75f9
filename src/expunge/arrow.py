"""Small Arrow helpers shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table with ``schema`` and no rows, built without ``Schema.empty_table()``, which imports pandas
    (0.3-0.7 s) to do it. (pyarrow 26 imports pandas for some numpy conversions too, so a whole run
    still loads it; paths that build no arrays from numpy, such as ``--help``, no longer do.)"""
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One parquet file, whole or some columns, through the file reader: the store holds only files, and
    ``pq.read_table``'s dataset layer (directories, partitions, filters) is more than a file needs."""
    with pq.ParquetFile(path) as fh:
        return fh.read(columns=list(columns) if columns is not None else None)
