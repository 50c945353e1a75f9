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
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import atomic
from expunge.config import QUALITY_FLOOR
from expunge.errors import ExpungeError
from expunge.index.build import read_feature, read_quarantine
from expunge.lists.bank import LoadedBank, added_since, load_bank, load_info
from expunge.matchers.exact import SortedSet, fixed_to_numpy, match_column
from expunge.signals import feature_is_image
from expunge.store import Store

if TYPE_CHECKING:
    from expunge.matchers.hamming import HammingIndex

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
    return FINDINGS_SCHEMA.empty_table()


def read_findings(path: Path) -> pa.Table:
    if not path.is_file():
        return empty_findings()
    return pq.read_table(path).cast(FINDINGS_SCHEMA)


def _exact_binary(values: np.ndarray) -> pa.Array:
    """An ``S{width}`` array as Arrow binary with every byte kept (``tolist`` drops trailing zeros)."""
    width = values.dtype.itemsize
    buf = pa.py_buffer(np.ascontiguousarray(values).tobytes())
    return pa.Array.from_buffers(pa.binary(width), len(values), [None, buf]).cast(pa.binary())


def _findings_for(
    rows: np.ndarray, values: np.ndarray, distance: np.ndarray | None, bank: str, version: int, signal: str
) -> pa.Table:
    n = len(rows)
    return pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "bank": pa.array([bank] * n, pa.string()),
            "bank_version": pa.array(np.full(n, version, dtype=np.int32)),
            "signal": pa.array([signal] * n, pa.string()),
            "value": _exact_binary(values),
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


_SETS: dict[int, tuple[np.ndarray, SortedSet]] = {}


def _sorted_set(values: np.ndarray) -> SortedSet:
    """The delta's lookup table, built once per worker for the same (cached) delta array."""
    hit = _SETS.get(id(values))
    if hit is None or hit[0] is not values:
        _SETS.clear()
        hit = (values, SortedSet.build(values))
        _SETS[id(values)] = hit
    return hit[1]


@lru_cache(maxsize=8)
def _net_added(store_root: str, name: str, since: int, version: int) -> np.ndarray:
    """Values added after ``since`` that are still in the bank: computed once per worker, not per shard."""
    store = Store(store_root)
    bank = load_bank(store, name, version)
    added = added_since(store, name, since, bank.width)
    return added[bank.values.contains(added)] if len(added) else added


def _threshold_changed(store: Store, name: str, since: int) -> bool:
    """A perceptual bank whose threshold changed must be matched afresh, not by delta."""
    info = load_info(store, name)
    return any(v.get("threshold") != info.threshold for v in info.versions[since - 1 :])


@lru_cache(maxsize=4)
def _hamming_index(bank_dir: str, version: int, values_bytes: int) -> HammingIndex:
    """One index per bank version per worker process, reused for every shard it matches."""
    from expunge.lists.bank import read_values, values_path
    from expunge.matchers.hamming import HammingIndex

    return HammingIndex.build(read_values(values_path(Path(bank_dir), version), 32))


def _find(
    index_dir: Path, bank: LoadedBank, values: np.ndarray, task: MatchTask, *, cache: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows of one shard matching ``values`` of a bank: (rows, matched bank values, distances or None)."""
    feature = bank.feature
    if bank.signal == "release_keep":  # a keep-list: what is absent from it is found
        column = read_feature(index_dir, feature)
        own, valid = fixed_to_numpy(column, bank.width)
        absent = ~bank.values.contains(own) & valid
        # Rows that cannot be checked (null, empty, not a web URL) are quarantined for that reason; a
        # keep-list finding would only relabel them.
        quarantined = read_quarantine(index_dir)
        if len(quarantined) >= len(absent):
            absent &= quarantined[: len(absent)] == 0
        return np.flatnonzero(absent), own[absent], None
    if not feature_is_image(feature):
        column = read_feature(index_dir, feature)
        target = bank.values if cache else _sorted_set(values)
        rows, vals = match_column(column, bank.width, target)
        return rows, vals, None
    from expunge.index.images import COLUMN_OF_FEATURE, quality_mask, read_images

    if (index_dir / "images.parquet").is_file():
        images = read_images(index_dir)
    else:
        raise ExpungeError("image lists need image shards: this shard has none", index_dir.name)
    # One line per member (every member of every sample, and data outside every sample with row -1):
    # a match on any member names its sample's row.
    sample_rows = images.column("row").to_numpy()
    if bank.threshold is None:  # exact digest of the stored bytes
        target = bank.values if cache else SortedSet.build(values)
        column = images.column(COLUMN_OF_FEATURE[feature]).combine_chunks()
        idx, vals = match_column(column, bank.width, target)
        return _member_rows(sample_rows[idx], bank.name, task), vals, None
    if cache:
        index = _hamming_index(str(Store(task.store_root).bank_dir(bank.name)), bank.version, len(values))
    else:
        from expunge.matchers.hamming import HammingIndex

        index = HammingIndex.build(values)
    ok = np.flatnonzero(quality_mask(images, task.quality_floor))
    pdq, _ = fixed_to_numpy(images.column("pdq").combine_chunks(), 32)
    queries, owners = [pdq[ok]], [ok]
    if task.dihedral and "dihedral" in images.column_names:
        dih = images.column("dihedral").combine_chunks().take(pa.array(ok))
        lengths = dih.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
        flat, _ = fixed_to_numpy(dih.flatten(), 32)
        queries.append(flat)
        owners.append(np.repeat(ok, lengths))
    q = np.concatenate(queries)
    owner = np.concatenate(owners)
    qi, bi, dist = index.search(q, threshold=int(bank.threshold))
    return _member_rows(sample_rows[owner[qi]], bank.name, task), values[bi], dist.astype(np.float32)


def _member_rows(rows: np.ndarray, bank: str, task: MatchTask) -> np.ndarray:
    """Rows of matched members; a match on data outside every sample has no row to remove: refused."""
    outside = int((rows < 0).sum())
    if outside:
        raise ExpungeError(
            f"{outside} file(s) outside every sample match bank {bank!r}: they cannot be removed with a row"
            " (refusing the shard; remove them from it)",
            task.shard_name,
        )
    return rows


def match_shard(task: MatchTask) -> MatchResult:
    started = time.perf_counter()
    store = Store(task.store_root)
    index_dir = Path(task.index_dir)
    state_path = Path(task.state_path)
    state: dict[str, int] = atomic.read_json(state_path) if state_path.is_file() else {}
    existing = read_findings(Path(task.findings_path)) if state else empty_findings()
    result = MatchResult(task.shard_name)
    parts: list[pa.Table] = []
    in_task = {b.name for b in task.banks}
    if existing.num_rows:
        others = existing.filter(pc.invert(pc.is_in(existing.column("bank"), pa.array(sorted(in_task)))))
        parts.append(others)
    new_state = {k: v for k, v in state.items() if k not in in_task}
    for ref in task.banks:
        bank = load_bank(store, ref.name, ref.version)
        prev = state.get(ref.name)
        if prev == ref.version:
            mode = "current"
            mine = existing.filter(pc.equal(existing.column("bank"), ref.name))
        elif (
            prev is not None
            and prev < ref.version
            and bank.signal != "release_keep"  # absence cannot be updated by a delta
            and not _threshold_changed(store, ref.name, prev)
        ):
            mode = "incremental"
            mine = existing.filter(pc.equal(existing.column("bank"), ref.name))
            if mine.num_rows:
                vals = np.array(mine.column("value").to_pylist(), dtype=f"S{bank.width}")
                mine = mine.filter(pa.array(bank.values.contains(vals)))
            added = _net_added(task.store_root, ref.name, prev, ref.version)
            if len(added):
                found = _find(index_dir, bank, added, task, cache=False)
                mine = pa.concat_tables([mine, _findings_for(*found, ref.name, ref.version, bank.signal)])
        else:
            mode = "full"
            found = _find(index_dir, bank, bank.values.values, task, cache=True)
            mine = _findings_for(*found, ref.name, ref.version, bank.signal)
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
    with atomic.atomic_path(Path(task.findings_path), store.tmp) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    atomic.write_json(state_path, new_state, store.tmp)
    for ref in task.banks:
        sel = table.filter(pc.equal(table.column("bank"), ref.name))
        result.by_bank[ref.name] = len(np.unique(sel.column("row").to_numpy())) if sel.num_rows else 0
    result.seconds = time.perf_counter() - started
    return result
