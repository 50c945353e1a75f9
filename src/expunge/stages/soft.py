"""The soft-signal stage: per shard, the values (scores, nudity, plug-ins) and keyword hits a policy
asks for. Each value is measured by its signal type (``expunge.signals.soft``); this stage keeps the
sparse part and never asks which signal it holds.

Soft findings share the findings table's schema (:data:`expunge.match.stage.FINDINGS_SCHEMA`) and live
beside the hash-list findings in the store, in ``soft.parquet``: ``signal`` is ``score``, ``keyword``
or ``nsfw``; ``bank`` names what was measured (``score.punsafe``, ``keyword.LIST``, ``nsfw``);
``score`` holds the number; ``value`` holds a keyword's term id (SHA-256 of the normalised term, never
the term) or ``b"missing"`` for a row that has no score. Findings are sparse: a score is kept only at
or above the lowest threshold the policy compares it with, so a policy may only use ``>``/``>=``.

A shard's soft findings are redone only when its content, the score columns or thresholds, the
keyword lists' bytes or the nudity model change (``expunge.stages.done``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import empty_table
from expunge.errors import ExpungeError
from expunge.features.digest import as_binary
from expunge.features.text import utf8_invalid_mask
from expunge.formats import Shard
from expunge.match.stage import FINDINGS_SCHEMA, _exact_binary
from expunge.stages import done

if TYPE_CHECKING:
    from expunge.signals.keyword import TermList

MISSING = b"missing"


@dataclass(frozen=True)
class SoftTask:
    shard: Shard
    shard_sha256: str
    index_dir: str
    out_path: str  # soft.parquet
    state_path: str  # its completion record
    tmp_dir: str
    # (reference, lowest threshold, signal fingerprint) per value the policy compares: ``score.punsafe``
    values: tuple[tuple[str, float, str], ...] = ()
    caption_column: str | None = None
    keywords: tuple[tuple[str, TermList], ...] = ()  # (list name, terms)

    @property
    def shard_name(self) -> str:
        return self.shard.name

    def fingerprint(self) -> dict[str, object]:
        return {
            "format": 3,  # 2: stray non-UTF-8 bytes in captions replaced; 3: values by signal registry
            "sha256": self.shard_sha256,
            "values": [list(v) for v in self.values],
            "caption": self.caption_column,
            "keywords": [[name, terms.sha256] for name, terms in self.keywords],
        }


@dataclass
class SoftResult:
    shard: str
    counts: dict[str, int]  # rows per soft finding name (bank column)
    done: bool = False  # already current
    seconds: float = 0.0


def _table(
    rows: np.ndarray, signal: str, bank: str, values: list[bytes] | pa.Array, score: pa.Array
) -> pa.Table:
    n = len(rows)
    return pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "bank": pa.array([bank] * n, pa.string()),
            "bank_version": pa.array(np.zeros(n, dtype=np.int32)),
            "signal": pa.array([signal] * n, pa.string()),
            "value": pa.array(values, pa.binary()),
            "distance": pa.nulls(n, pa.float32()),
            "score": score.cast(pa.float32()),
        },
        schema=FINDINGS_SCHEMA,
    )


def _values(task: SoftTask, ref: str, lowest: float) -> pa.Table:
    """Rows whose value is at or above ``lowest`` (a row's largest), and rows with no value: missing."""
    from expunge.signals.soft import split_ref

    sig, param = split_ref(ref)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for rows, values in sig.measure(task.shard, Path(task.index_dir), param):
        keep = np.isnan(values) | (values >= lowest)
        if keep.any():
            parts.append((rows[keep], values[keep]))
    if not parts:
        return empty_table(FINDINGS_SCHEMA)
    rows = np.concatenate([r for r, _ in parts])
    values = np.concatenate([v for _, v in parts])
    # One finding per row: its largest value, and missing when any of its values is (several images).
    order = np.lexsort((-np.nan_to_num(values, nan=np.inf), rows))
    rows, values = rows[order], values[order]
    first = np.concatenate(([True], rows[1:] != rows[:-1]))
    rows, values = rows[first], values[first]
    miss = np.isnan(values)
    tags = [MISSING if m else b"" for m in miss.tolist()]
    return _table(rows, sig.name, ref, tags, pa.array(values, pa.float64(), mask=miss))


def _repaired(batch: pa.Array) -> pa.Array:
    """Captions with every byte that is not UTF-8 replaced by U+FFFD: one stray byte must not hide a
    term from the matcher (it reads non-UTF-8 rows as null, and a null caption matches nothing)."""
    if not (pa.types.is_binary(batch.type) or pa.types.is_large_binary(batch.type)) and not (
        pa.types.is_string(batch.type) or pa.types.is_large_string(batch.type)
    ):
        return batch
    raw = as_binary(batch)
    bad = utf8_invalid_mask(raw)
    if not bad.any():
        return batch
    idx = np.flatnonzero(bad)
    fixed = [raw[int(i)].as_py().decode("utf-8", "replace") for i in idx]
    text_type = pa.large_string() if pa.types.is_large_binary(raw.type) else pa.string()
    good = pc.if_else(pa.array(bad), pa.scalar(None, raw.type), raw).cast(text_type)
    return pc.replace_with_mask(good, pa.array(bad), pa.array(fixed, text_type))


def _keywords(task: SoftTask) -> list[pa.Table]:
    from expunge.signals.keyword import KeywordMatcher

    if not task.caption_column:
        raise ExpungeError(
            "the policy uses keyword lists, but the dataset has no caption column (give --caption-column)",
            task.shard.location,
        )
    fmt = task.shard.handler
    matchers = [(name, terms, KeywordMatcher(terms)) for name, terms in task.keywords]
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name, _ in task.keywords}
    start = 0
    for batch in fmt.iter_text(task.shard, task.caption_column):
        batch = _repaired(batch)
        for name, _terms, matcher in matchers:
            rows, term = matcher.match(batch)
            if len(rows):
                found[name].append((rows + start, term))
        start += len(batch)
    out: list[pa.Table] = []
    for name, terms, _m in matchers:
        if not found[name]:
            continue
        rows = np.concatenate([r for r, _ in found[name]])
        term = np.concatenate([t for _, t in found[name]])
        ids = _exact_binary(terms.term_ids[term])  # every byte: S32 drops trailing zeros
        out.append(_table(rows, "keyword", f"keyword.{name}", ids, pa.nulls(len(rows))))
    return out


def soft_shard(task: SoftTask) -> SoftResult:
    started = time.perf_counter()
    state = Path(task.state_path)
    out = Path(task.out_path)
    fingerprint = task.fingerprint()
    record = done.read_record(state)
    if record is not None and done.is_done(record, lambda: fingerprint, [out]):
        return SoftResult(task.shard_name, dict(record.get("counts", {})), True)
    parts = [_values(task, ref, lowest) for ref, lowest, _fp in task.values]
    if task.keywords:
        parts.extend(_keywords(task))
    table = pa.concat_tables(parts) if parts else empty_table(FINDINGS_SCHEMA)
    table = table.sort_by([("bank", "ascending"), ("row", "ascending"), ("value", "ascending")])
    counts: dict[str, int] = {}
    if table.num_rows:
        banks = table.column("bank").to_numpy(zero_copy_only=False)
        rows = table.column("row").to_numpy()
        for bank in np.unique(banks).tolist():
            counts[bank] = len(np.unique(rows[banks == bank]))
    with atomic.atomic_path(out, Path(task.tmp_dir)) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    done.mark_done(state, {**fingerprint, "counts": counts}, Path(task.tmp_dir))
    return SoftResult(task.shard_name, counts, False, time.perf_counter() - started)
