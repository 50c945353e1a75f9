"""Helpers for the review-loop tests: a queue in a temporary store, candidates from (shard, row) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from expunge.review.queue import Candidates, ReviewQueue, queue_path
from expunge.store import Store

KEY = bytes(range(32))
DS = "data-0123456789abcdef"
NOW = "2025-01-02T03:04:05Z"
LATER = "2025-02-03T04:05:06Z"


def make_queue(root: Path, key: bytes = KEY, ds: str = DS) -> ReviewQueue:
    store = Store(root).ensure()
    return ReviewQueue(queue_path(store.review_dir(ds)), key, ds, store.tmp)


def cands(
    pairs: Sequence[tuple[str, int]],
    rules: Sequence[str] = ("neighbour-review",),
    signals: str = '{"punsafe":0.97}',
) -> Candidates:
    return Candidates(
        shard=[s for s, _ in pairs],
        row=np.asarray([r for _, r in pairs], dtype=np.int64),
        rules=[list(rules) for _ in pairs],
        signals=[signals for _ in pairs],
    )
