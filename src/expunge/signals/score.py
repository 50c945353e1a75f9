"""``score.COLUMN``: any numeric column of the dataset (LAION's ``punsafe``, ``pwatermark``, a
classifier's output) as a soft signal.

The column is read through the shard's format, one batch at a time, cast to float64 (integers,
floats, decimals; anything else is refused by name: a string column compared with 0.95 would be a
silent guess). Null and NaN are missing: their own reason, never "safe".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.errors import ExpungeError
from expunge.signals.base import ValueSignal

if TYPE_CHECKING:
    from expunge.formats import Shard


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t))


@dataclass(frozen=True)
class ScoreSignal(ValueSignal):
    def check(self, ds: Any, param: str | None) -> None:
        """A column the policy compares must be in every shard: refused before index and match run."""
        for shard in ds.shards:
            if shard.metadata and param not in shard.handler.column_names(shard):
                raise ExpungeError(
                    f"the policy compares column {param!r}, which this shard does not have", shard.location
                )

    def measure(
        self, shard: Shard, index_dir: Path, param: str | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        column = param or ""
        fmt = shard.handler
        if column not in fmt.column_names(shard):
            raise ExpungeError(
                f"the policy compares column {column!r}, which this shard does not have", shard.location
            )
        start = 0
        for batch in fmt.iter_column(shard, column):
            value_type = batch.type.value_type if pa.types.is_dictionary(batch.type) else batch.type
            if not _numeric(value_type):
                raise ExpungeError(
                    f"column {column!r} is {batch.type}, not a number: it cannot be compared with a"
                    " threshold",
                    shard.location,
                )
            if pa.types.is_dictionary(batch.type):
                batch = batch.dictionary_decode()
            values = pc.fill_null(batch.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
            yield np.arange(start, start + len(values), dtype=np.int64), np.asarray(values, dtype=np.float64)
            start += len(values)
        if shard.metadata and start != fmt.rows(shard):
            raise ExpungeError("shard changed while it was being read; run again", shard.location)


SCORE = ScoreSignal("score", takes_param=True)
