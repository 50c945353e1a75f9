"""The match stage's per-shard task: stored index ⋈ banks → findings, incrementally.

Findings are stored per shard with a state file naming the bank versions they reflect. When a bank
gains values, only the added values are matched against the stored index (the dataset is not read);
findings whose value has left the bank are dropped. Findings carry ``distance`` and ``score`` columns,
null for exact URL matches, so perceptual and scored signals fit the same table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import empty_table, read_parquet
from expunge.config import QUALITY_FLOOR
from expunge.features.base import parse_feature
from expunge.lists.bank import LoadedBank, added_since, load_bank, load_info
from expunge.matchers.base import Findings, Matcher, Probe
from expunge.matchers.registry import get_matcher
from expunge.signals import get_signal
from expunge.stages import done
from expunge.store import Store

FINDINGS_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("bank", pa.string()),
        ("bank_version", pa.int32()),
        ("signal", pa.string()),
        ("value", pa.binary()),
        ("distance", pa.float32()),
        ("score", pa.float32()),
    ]
)


@dataclass(frozen=True)
class BankRef:
    name: str
    version: int


@dataclass(frozen=True)
class MatchTask:
    shard_name: str
    store_root: str
    index_dir: str
    findings_path: str
    state_path: str
    banks: tuple[BankRef, ...]
    quality_floor: int = QUALITY_FLOOR  # PDQ hashes below this quality are counted, never matched
    dihedral: bool = False  # also match the 7 other orientations' PDQ hashes


@dataclass
class MatchResult:
    shard_name: str
    by_bank: dict[str, int] = field(default_factory=dict)  # rows matched per bank
    mode: dict[str, str] = field(default_factory=dict)  # bank → "full" | "incremental" | "current"
    seconds: float = 0.0


def empty_findings() -> pa.Table:
    return empty_table(FINDINGS_SCHEMA)


def findings_state(path: Path) -> Path:
    """The state file beside a findings file (``Store.findings`` pairs ``STEM.parquet`` with
    ``STEM.state.json``): which bank versions the findings reflect."""
    return path.with_name(path.name.removesuffix(".parquet") + ".state.json")


def read_findings(path: Path) -> pa.Table:
    if not path.is_file():
        return empty_findings()
    return read_parquet(path).cast(FINDINGS_SCHEMA)


def _exact_binary(values: np.ndarray) -> pa.Array:
    """An ``S{width}`` array as Arrow binary with every byte kept (``tolist`` drops trailing zeros)."""
    width = values.dtype.itemsize
    buf = pa.py_buffer(np.ascontiguousarray(values).tobytes())
    return pa.Array.from_buffers(pa.binary(width), len(values), [None, buf]).cast(pa.binary())


def _findings_for(found: Findings, bank: str, version: int, signal: str) -> pa.Table:
    rows, distance = found.rows, found.distances
    n = len(rows)
    return pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "bank": pa.array([bank] * n, pa.string()),
            "bank_version": pa.array(np.full(n, version, dtype=np.int32)),
            "signal": pa.array([signal] * n, pa.string()),
            "value": _exact_binary(found.values),
            "distance": pa.nulls(n, pa.float32()) if distance is None else pa.array(distance, pa.float32()),
            "score": pa.nulls(n, pa.float32()),
        },
        schema=FINDINGS_SCHEMA,
    )


def _dedupe_sorted(table: pa.Table) -> pa.Table:
    """One finding per (row, bank, value); sorted so reruns write identical bytes."""
    if table.num_rows == 0:
        return table
    # Nearest first, so the kept finding of a (row, bank, value) is its smallest distance.
    keys = [("row", "ascending"), ("bank", "ascending"), ("value", "ascending"), ("distance", "ascending")]
    table = table.sort_by(keys)
    n = table.num_rows

    def changed(name: str) -> np.ndarray:
        col = table.column(name).combine_chunks()
        return np.asarray(pc.not_equal(col.slice(1), col.slice(0, n - 1)).to_numpy(zero_copy_only=False))

    # After the sort, a finding repeats the previous one exactly when none of its keys changed.
    keep = np.concatenate(([True], changed("row") | changed("bank") | changed("value")))
    return table.filter(pa.array(keep)) if not keep.all() else table


@lru_cache(maxsize=8)
def _net_added(store_root: str, name: str, since: int, version: int) -> np.ndarray:
    """Values added after ``since`` that are still in the bank: computed once per worker, not per shard."""
    store = Store(store_root)
    bank = load_bank(store, name, version)
    added = added_since(store, name, since, bank.width)
    if not len(added) or not _shrank_since(store_root, name, since, version):
        return added  # nothing was removed since: every added value is still there
    kept: np.ndarray = added[bank.values.contains(added)]
    return kept


@lru_cache(maxsize=8)
def _shrank_since(store_root: str, name: str, since: int, version: int) -> bool:
    """Whether a version after ``since`` removed values. A list that only grew needs no membership test
    against the whole bank, so a daily update never loads (and indexes) its millions of values."""
    info = load_info(Store(store_root), name)
    later = [v for v in info.versions if since < int(v["version"]) <= version]
    return any(int(v.get("removed", 1)) for v in later)


def _threshold_changed(store: Store, name: str, since: int) -> bool:
    """A perceptual bank whose threshold changed must be matched afresh, not by delta."""
    info = load_info(store, name)
    return any(v.get("threshold") != info.threshold for v in info.versions[since - 1 :])


def _matcher(bank: LoadedBank) -> Matcher:
    return get_matcher(get_signal(bank.signal).matcher)


def _find(index_dir: Path, bank: LoadedBank, values: np.ndarray, task: MatchTask, *, cache: bool) -> Findings:
    """Rows of one shard matching ``values`` of a bank, by the matcher its signal type names. With
    ``cache`` the values are the whole bank, whose lookup tables each worker keeps for every shard."""
    probe = Probe(
        index_dir,
        task.shard_name,
        bank.name,
        parse_feature(bank.feature),
        bank.width,
        values,
        bank.values if cache else None,
        bank.threshold,
        task.quality_floor,
        task.dihedral,
    )
    return _matcher(bank).find(probe)


def match_shard(task: MatchTask) -> MatchResult:
    started = time.perf_counter()
    store = Store(task.store_root)
    index_dir = Path(task.index_dir)
    state_path = Path(task.state_path)
    state: dict[str, int] = done.read_record(state_path) or {}
    existing = read_findings(Path(task.findings_path)) if state else empty_findings()
    result = MatchResult(task.shard_name)
    parts: list[pa.Table] = []
    in_task = {b.name for b in task.banks}
    if existing.num_rows:
        others = existing.filter(pc.invert(pc.is_in(existing.column("bank"), pa.array(sorted(in_task)))))
        parts.append(others)
    new_state = {k: v for k, v in state.items() if k not in in_task}
    # Whether the findings file must be written again. An incremental match that found nothing new and
    # dropped nothing leaves it as it is: the state file alone moves to the new version (decide checks
    # the version there), so a daily update does not rewrite every shard's findings.
    rewrite = not state or any(b.name not in state for b in task.banks)
    for ref in task.banks:
        bank = load_bank(store, ref.name, ref.version)
        prev = state.get(ref.name)
        if prev == ref.version:
            mode = "current"
            mine = existing.filter(pc.equal(existing.column("bank"), ref.name))
        elif (
            prev is not None
            and prev < ref.version
            and _matcher(bank).incremental
            and not _threshold_changed(store, ref.name, prev)
        ):
            mode = "incremental"
            mine = existing.filter(pc.equal(existing.column("bank"), ref.name))
            before = mine.num_rows
            if mine.num_rows and _shrank_since(task.store_root, ref.name, prev, ref.version):
                vals = np.array(mine.column("value").to_pylist(), dtype=f"S{bank.width}")
                mine = mine.filter(pa.array(bank.values.contains(vals)))
            rewrite = rewrite or mine.num_rows != before  # a value left the bank
            added = _net_added(task.store_root, ref.name, prev, ref.version)
            if len(added):
                found = _findings_for(
                    _find(index_dir, bank, added, task, cache=False), ref.name, ref.version, bank.signal
                )
                rewrite = rewrite or found.num_rows > 0  # a value joined it and matched here
                mine = pa.concat_tables([mine, found])
        else:
            mode = "full"
            found = _find(index_dir, bank, bank.values.values, task, cache=True)
            mine = _findings_for(found, ref.name, ref.version, bank.signal)
            rewrite = True
        if mine.num_rows:
            mine = mine.set_column(
                mine.schema.get_field_index("bank_version"),
                "bank_version",
                pa.array(np.full(mine.num_rows, ref.version, dtype=np.int32)),
            )
        parts.append(mine)
        new_state[ref.name] = ref.version
        result.mode[ref.name] = mode
    table = _dedupe_sorted(pa.concat_tables(parts) if parts else empty_findings())
    if rewrite:
        with atomic.atomic_path(Path(task.findings_path), store.tmp) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    done.mark_done(state_path, new_state, store.tmp)  # last: the findings are done
    for ref in task.banks:
        sel = table.filter(pc.equal(table.column("bank"), ref.name))
        result.by_bank[ref.name] = len(np.unique(sel.column("row").to_numpy())) if sel.num_rows else 0
    result.seconds = time.perf_counter() - started
    return result
