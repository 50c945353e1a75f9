"""Planning the clean stage: one task per shard, and taking in what the tasks wrote.

A shard's completion record is its marker in the store's private folder for the release (the plan
hash and output size, see ``expunge.stages.clean_task``); it is trusted only with its records file and
outputs in place. The per-shard task is ``expunge.stages.clean_task.clean_shard``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from expunge import __version__, atomic
from expunge.arrow import empty_table
from expunge.engine import Executor
from expunge.features.base import parse_feature
from expunge.lists.bank import BankInfo
from expunge.stages import done
from expunge.stages.base import DatasetView
from expunge.stages.clean_task import (
    RECORD_SCHEMA,
    CleanResult,
    CleanTask,
    clean_shard,
    marker_paths,
    read_records,
)
from expunge.stages.decide import ShardTriage
from expunge.stages.match import refs
from expunge.store import Store


def scopes(banks: list[BankInfo]) -> tuple[bool, bool]:
    """Whether URL lists and image lists are in use (each quarantines what it cannot check). Lists of
    other columns (captions) quarantine nothing: a row whose caption is null is simply not matched."""
    url_scope = any(parse_feature(b.feature).source == "url" for b in banks)
    image_scope = any(parse_feature(b.feature).is_image for b in banks)
    return url_scope, image_scope


def plan(
    store: Store,
    ds: DatasetView,
    banks: list[BankInfo],
    out: Path,
    state_dir: Path,
    tmp_dir: Path,
    quality_floor: int,
    cover_rows: dict[str, list[int]] | None,
    triage: dict[str, ShardTriage] | None = None,
) -> list[CleanTask]:
    """Every shard gets a task: the task itself skips a shard whose marker still matches its plan."""
    key = store.key()
    url_scope, image_scope = scopes(banks)
    signals = tuple(b.signal for b in banks)
    return [
        CleanTask(
            shard=shard,
            shard_sha256=ds.state[shard.name]["sha256"],
            url_column=ds.columns.url,
            index_dir=str(store.index_dir(ds.id, shard.name)),
            findings_path=str(store.findings(ds.id, shard.name)[0]),
            banks=refs(banks),
            bank_signals=signals,
            bank_features=tuple(b.feature for b in banks),
            out_path=str(out / shard.name),
            state_dir=str(state_dir),
            tmp_dir=str(tmp_dir),
            key=key,
            key_column=ds.columns.key,
            url_scope=url_scope,
            image_scope=image_scope,
            quality_floor=quality_floor,
            cover_rows=tuple(cover_rows[shard.name]) if cover_rows is not None else (),
            dataset_root=ds.root,
            out_root=str(out),
            triage=triage[shard.name] if triage is not None else None,
        )
        for shard in ds.shards
    ]


def records(
    state_dir: Path, tasks: list[CleanTask], results: dict[str, CleanResult], executor: Executor
) -> tuple[pa.Table, list[str]]:
    """Every shard's removal records, concatenated, and every file the shards put in the release.

    A shard whose records do not list its files (written by an older expunge) is done again rather
    than trusted: without the list, a stale file in OUT could not be told from a fresh one.
    """
    for attempt in (1, 2):
        tables: list[pa.Table] = []
        outputs: list[str] = []
        redo: list[CleanTask] = []
        for task in tasks:
            marker, path = marker_paths(state_dir, task.shard_name)
            table, files = read_records(path)
            if files is None:
                if attempt == 2:
                    raise RuntimeError(f"{task.shard_name}: records list no files")  # a bug
                done.forget(marker)
                redo.append(task)
                continue
            tables.append(table)
            outputs.extend(files)
        if not redo:
            break
        for res in executor.map(clean_shard, redo):
            results[res.shard] = res
    return (pa.concat_tables(tables) if tables else empty_table(RECORD_SCHEMA)), outputs


def drop_stale_shards(state_dir: Path, out: Path, current: set[str]) -> None:
    """A shard that left the dataset since an earlier run into the same folder leaves the release too,
    with every file it had put there (its records list them)."""
    for marker in sorted(Store.private_shards(state_dir).glob("*.json")):
        shard = atomic.read_json(marker).get("shard")
        if not isinstance(shard, str) or shard in current:
            continue
        records_path = marker_paths(state_dir, shard)[1]
        files = read_records(records_path)[1] if records_path.is_file() else None
        for rel in files if files is not None else [shard]:
            path = out / rel
            if path.is_file() and not path.is_symlink():
                path.unlink()
        done.forget(records_path, marker)  # the marker last: a crash before this point redoes the cleanup


def summary(
    ds: DatasetView, banks: list[BankInfo], results: list[CleanResult], triage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The release's summary.json: counts by signal, bank and reason, and one line per shard."""

    def add(into: dict[str, int], more: dict[str, int]) -> None:
        for k, v in more.items():
            into[k] = into.get(k, 0) + v

    by_signal: dict[str, int] = {}
    by_bank: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    cancelled: dict[str, int] = {}
    for r in results:
        add(by_signal, r.by_signal)
        add(by_bank, r.by_bank)
        add(by_reason, r.quarantined_by_reason)
        add(by_rule, r.by_rule)
        add(cancelled, r.cancelled)
    rows_in = sum(r.rows_in for r in results)
    out = {
        "tool": f"expunge {__version__}",
        "dataset": {"root": ds.root, "shards": len(results), "url_column": ds.columns.url},
        "rows_in": rows_in,
        "rows_kept": sum(r.rows_kept for r in results),
        "rows_removed": sum(r.rows_removed for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "removed_by_signal": by_signal,
        "removed_by_bank": by_bank,
        "quarantined_by_reason": by_reason,
        "images_low_quality": sum(r.images_low_quality for r in results),
        "shards_copied": sum(r.action in ("copied", "linked") for r in results),
        "shards_rewritten": sum(r.action == "rewritten" for r in results),
        "banks": [b.public() for b in banks],
        **(
            {
                "removed_by_rule": dict(sorted(by_rule.items())),
                "negative_cancelled": dict(sorted(cancelled.items())),
                "triage": triage,
            }
            if triage is not None
            else {}
        ),
        "shards": [
            {
                "name": r.shard,
                "rows_in": r.rows_in,
                "rows_kept": r.rows_kept,
                "rows_removed": r.rows_removed,
                "rows_quarantined": r.rows_quarantined,
                "action": "copied" if r.action == "linked" else r.action,
                "sha256": r.sha256,
            }
            for r in results
        ],
    }
    if sum(r.rows_kept + r.rows_removed + r.rows_quarantined for r in results) != rows_in:
        raise RuntimeError("row accounting does not add up")  # never expected: a bug, not bad input
    return out
