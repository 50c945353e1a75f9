"""Planning the match stage: which shards' findings do not reflect the current bank versions.

A shard's completion record is its findings state file: bank name → version matched. The findings
are done when that file names every bank at its current version and the findings file exists. The
per-shard task is ``expunge.match.stage.match_shard``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from expunge.arrow import read_parquet
from expunge.lists.bank import BankInfo
from expunge.match.stage import BankRef, MatchTask
from expunge.stages import done
from expunge.stages.base import DatasetView
from expunge.store import Store


def refs(banks: list[BankInfo]) -> tuple[BankRef, ...]:
    return tuple(BankRef(b.name, b.version) for b in banks)


def plan(store: Store, ds: DatasetView, banks: list[BankInfo], quality_floor: int) -> list[MatchTask]:
    wanted = refs(banks)
    fingerprint = {r.name: r.version for r in wanted}
    tasks = []
    for shard in ds.shards:
        findings, state = store.findings(ds.id, shard.name)
        if done.is_done(done.read_record(state), fingerprint, [findings]):
            continue
        tasks.append(
            MatchTask(
                shard.name,
                str(store.root),
                str(store.index_dir(ds.id, shard.name)),
                str(findings),
                str(state),
                wanted,
                quality_floor=quality_floor,
                dihedral=ds.dihedral,
            )
        )
    return tasks


def is_incremental(task: MatchTask) -> bool:
    """Every bank of the task was matched before: only added values are matched (a light task)."""
    known = done.read_record(Path(task.state_path))
    return known is not None and all(b.name in known for b in task.banks)


def summary(store: Store, ds: DatasetView, banks: list[BankInfo]) -> dict[str, int]:
    """Rows matched per bank across the dataset (from stored findings, no dataset reads)."""
    out = {b.name: 0 for b in banks}
    names = set(out)
    for shard in ds.shards:
        path, _ = store.findings(ds.id, shard.name)
        if not path.is_file():
            continue
        table = read_parquet(path, columns=["row", "bank"])
        for bank in names:
            sel = table.filter(pc.equal(table.column("bank"), bank))
            out[bank] += pc.count_distinct(sel.column("row")).as_py()
    return out
