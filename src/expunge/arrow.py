"""Small Arrow helpers shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table with ``schema`` and no rows. ``Schema.empty_table()`` and ``pa.array([])`` import pandas
    (0.3-0.7 s of a command) to build the same thing; ``pa.nulls(0)`` does not."""
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One parquet file, whole or some columns. ``pq.read_table`` goes through the dataset layer, which
    imports pandas (0.3-0.7 s) on first use; a file reader does not, and the store reads only files."""
    with pq.ParquetFile(path) as fh:
        return fh.read(columns=list(columns) if columns is not None else None)
