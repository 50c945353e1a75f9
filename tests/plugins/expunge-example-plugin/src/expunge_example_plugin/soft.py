"""A soft signal type from a plug-in: ``key_len``, the length of each row's sample key (benign, for tests).

A policy names it like a built-in (``key_len >= 4``); the soft stage measures it shard by shard through
:meth:`measure` and never asks which signal it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.signals.base import ValueSignal


@dataclass(frozen=True)
class KeyLength(ValueSignal):
    def measure(
        self, shard: Any, index_dir: Path, param: str | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        start = 0
        for batch in shard.handler.iter_column(shard, "key"):
            lengths = pc.utf8_length(batch).cast(pa.float64())
            values = pc.fill_null(lengths, float("nan")).to_numpy(zero_copy_only=False)
            yield np.arange(start, start + len(values), dtype=np.int64), np.asarray(values, dtype=np.float64)
            start += len(values)


KEY_LENGTH = KeyLength("key_len", low=0.0)
