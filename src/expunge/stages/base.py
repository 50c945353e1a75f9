"""What the stages need to know of a dataset and what each reports, without importing the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from expunge.formats import Shard
from expunge.formats.parquet import ColumnMap


class DatasetView(Protocol):
    """The dataset as the stages see it (``pipeline.dataset.Dataset`` is one)."""

    id: str
    root: str
    shards: list[Shard]
    columns: ColumnMap
    state: dict[str, Any]  # shard name → the index stage's completion record
    dihedral: bool
    max_pixels: int


@dataclass
class StageReport:
    stage: str
    shards_total: int
    shards_run: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
