"""Small Arrow helpers shared by every layer."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


class _RefusePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed by expunge")
        return None


def without_pandas() -> None:
    """Stop pyarrow from importing pandas in this process (0.2-0.3 s, in every worker too).

    pyarrow asks whether pandas is installed the first time it converts anything (``pa.array`` of a
    list or a numpy array), to recognise pandas objects, and imports it to find out. expunge never hands
    it pandas objects. Answering that first question with "not installed" makes pyarrow skip the
    import for good; pandas itself stays importable (a later ``import pandas`` or ``to_pandas`` works).
    Nothing happens when pandas is already imported.
    """
    if "pandas" in sys.modules:
        return
    finder = _RefusePandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)
