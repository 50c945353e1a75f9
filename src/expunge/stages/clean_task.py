"""The clean stage's per-shard task: decide each row, then copy or rewrite the shard.

A shard with nothing to remove is placed byte for byte (hard link, else copy). A shard with removals
is rewritten as it was written. Beside it, per shard, a record of what was taken out: a keyed hash of
the URL, the row index and the reasons; never the URL or caption. A completion marker, written last,
lets an interrupted run skip finished shards; its plan hash makes sure a changed decision redoes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import read_parquet
from expunge.config import QUALITY_FLOOR
from expunge.errors import StaleShardError
from expunge.features.digest import as_binary
from expunge.formats import Shard
from expunge.formats.base import CleanRows, CleanTarget, ShardOutputs
from expunge.formats.parquet import as_text
from expunge.index.build import content_sha256, is_sha256, shard_identity
from expunge.match.stage import BankRef
from expunge.stages import done
from expunge.stages.decide import Decided, ShardTriage, decide
from expunge.store import Store

RECORD_SCHEMA = pa.schema(
    [
        ("row_key", pa.binary(16)),
        ("shard", pa.string()),
        ("row", pa.int64()),
        # The dataset's own sample key, keyed-hashed like the URL: datasets that use the URL as the key
        # (common on the Hub) would otherwise put the flagged URL into the records.
        ("key_hash", pa.binary(16)),
        ("action", pa.string()),
        ("reasons", pa.list_(pa.string())),
    ]
)
PLAN_FORMAT = 1
OUTPUTS_META = b"expunge.outputs"


@dataclass(frozen=True)
class CleanTask:
    shard: Shard
    shard_sha256: str
    url_column: str | None
    index_dir: str
    findings_path: str
    banks: tuple[BankRef, ...]
    bank_signals: tuple[str, ...]  # signal type of each bank, same order
    bank_features: tuple[str, ...]  # feature of each bank, same order (negative banks cancel by feature)
    out_path: str  # where the shard's main file goes (the tar for tar shards)
    state_dir: str  # OUT/.expunge
    tmp_dir: str
    key: bytes
    key_column: str | None = None
    url_scope: bool = True  # URL lists in use: rows whose URL cannot be checked are quarantined
    image_scope: bool = False  # image lists in use: images that cannot be decoded are quarantined
    quality_floor: int = QUALITY_FLOOR
    cover_rows: tuple[int, ...] = ()  # extra rows removed to hide the flagged ones (release.cover)
    dataset_root: str | None = None  # where aligned embedding files are looked for
    out_root: str | None = None  # the release folder
    triage: ShardTriage | None = (
        None  # policy, soft findings, negative banks, verdicts (None: hash lists only)
    )
    # The decision the flood tally made for this shard in this run, when the clean runs in the same process
    # and nothing changed in between (an update that writes no shard): not made a second time.
    decided: Decided | None = None

    @property
    def shard_name(self) -> str:
        return self.shard.name


@dataclass
class CleanResult:
    shard: str
    rows_in: int
    rows_kept: int
    rows_removed: int
    rows_quarantined: int
    action: str  # "linked" | "copied" | "rewritten"
    sha256: str
    size: int
    by_signal: dict[str, int] = field(default_factory=dict)
    by_bank: dict[str, int] = field(default_factory=dict)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    plan: str = ""
    resumed: bool = False
    seconds: float = 0.0
    images_low_quality: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # rows removed or withheld per deciding rule
    cancelled: dict[str, int] = field(default_factory=dict)  # findings cancelled per negative bank
    review: list[list[Any]] = field(default_factory=list)  # [row, rules, signals JSON] per review candidate


_RESULT_FIELDS = frozenset(CleanResult.__dataclass_fields__)


def marker_paths(state_dir: Path, shard_name: str) -> tuple[Path, Path]:
    """A shard's completion marker and removal records in the release's state folder."""
    return Store.clean_marker(state_dir, shard_name)


def keyed_hash(values: list[bytes | None], key: bytes) -> list[bytes | None]:
    """Keyed BLAKE2b of each URL: names a row stably for the key holder, reveals nothing to others."""
    return [None if v is None else hashlib.blake2b(v, key=key, digest_size=16).digest() for v in values]


def _decide(task: CleanTask) -> Decided:
    return decide(
        Path(task.index_dir),
        Path(task.findings_path),
        task.shard_name,
        task.banks,
        task.bank_signals,
        task.bank_features,
        task.triage,
        url_scope=task.url_scope,
        image_scope=task.image_scope,
        quality_floor=task.quality_floor,
        cover_rows=task.cover_rows,
    )


def tally_shard(task: CleanTask) -> tuple[str, Decided, bool]:
    """The shard's decisions without writing anything: the flood guard counts them first. The flag
    says whether cleaning it will write the shard (its removed rows changed since its marker)."""
    decided = _decide(task)
    gone = sorted(set(decided.reasons) | set(decided.quarantined))
    record = done.read_record(marker_paths(Path(task.state_dir), task.shard_name)[0])
    return task.shard_name, decided, record is None or record.get("rows_plan") != rows_plan(task, gone)


def rows_plan(task: CleanTask, gone: list[int]) -> str:
    """What the shard's bytes depend on: its source and the rows taken out. A list update that changes
    only why rows go (a bank's version, a rule's name) rewrites the records, never the shard."""
    return hashlib.sha256(json.dumps([PLAN_FORMAT, task.shard_sha256, gone]).encode()).hexdigest()


def _target(task: CleanTask) -> CleanTarget:
    out_root = Path(task.out_root) if task.out_root else None
    return CleanTarget(Path(task.out_path), Path(task.tmp_dir), out_root, task.dataset_root)


def _outputs(task: CleanTask, drop: frozenset[str]) -> ShardOutputs:
    """Every file this shard puts in the release, and the ones that are its identity."""
    return task.shard.handler.outputs(task.shard, _target(task), drop)


def _drop_keys(task: CleanTask, gone: list[int]) -> frozenset[str]:
    """Sample keys of the removed rows, for formats whose shards carry samples."""
    if not gone or not task.shard.handler.has_images:
        return frozenset()
    return frozenset(_keys_of_rows(task, gone))


def clean_shard(task: CleanTask) -> CleanResult:
    started = time.perf_counter()
    decided = task.decided if task.decided is not None else _decide(task)
    rows_in, reasons, quarantined, low_quality = (
        decided.rows_in,
        decided.reasons,
        decided.quarantined,
        decided.low_quality,
    )
    review = [[row, rules, signals] for row, (rules, signals) in sorted(decided.review.items())]
    planned_items: list[object] = [
        PLAN_FORMAT,
        task.shard_sha256,
        sorted(reasons.items()),
        sorted(quarantined.items()),
    ]
    if review:  # what the review queue is told is part of what the shard's record vouches for
        planned_items.append(review)
    plan = hashlib.sha256(json.dumps(planned_items, sort_keys=True).encode()).hexdigest()
    state_dir = Path(task.state_dir)
    marker, records_path = marker_paths(state_dir, task.shard_name)
    gone = sorted(set(reasons) | set(quarantined))
    drop = _drop_keys(task, gone)
    planned = _outputs(task, drop)
    outputs = planned.files
    record = done.read_record(marker)

    def size() -> int:
        return sum(os.path.getsize(p) for p in outputs)

    def fingerprint() -> dict[str, object]:
        return {"plan": plan, "size": size()}

    if record is not None and done.is_done(record, fingerprint, [records_path, *outputs]):
        result = CleanResult(**{k: v for k, v in record.items() if k in _RESULT_FIELDS})
        result.resumed = True
        return result
    same = rows_plan(task, gone)
    tmp_dir = Path(task.tmp_dir)

    def same_rows() -> dict[str, object]:
        return {"rows_plan": same, "size": size()}

    named: dict[str, pa.Array] | None = None  # row_key and key_hash of the gone rows, when known already
    if record is not None and done.is_done(record, same_rows, outputs):
        action, sha = str(record["action"]), str(record["sha256"])
        named = _previous_names(records_path, gone)
    else:
        _confirm_source(task)
        capture = tuple(c for c in (task.url_column, task.key_column) if c and task.shard.metadata)
        rows = CleanRows(rows_in, gone, drop, task.key_column, capture)
        action = task.shard.handler.write_clean(task.shard, _target(task), rows)
        main_files = [str(p) for p in planned.main]
        # A remote shard's index identity is its ETag, not a SHA-256: hash what was placed instead.
        placed_as_is = action != "rewritten" and is_sha256(task.shard_sha256)
        sha = task.shard_sha256 if placed_as_is else _confirm_source(task, content_sha256(main_files))
        if gone and capture and all(len(rows.captured.get(c, ())) == len(gone) for c in capture):
            named = _names(task, gone, rows.captured)
    _write_records(task, gone, reasons, quarantined, records_path, tmp_dir, named)
    by_signal: dict[str, int] = {}
    by_bank: dict[str, int] = {}
    for rs in reasons.values():
        for signal in sorted({r.split(":", 1)[0] for r in rs}):
            by_signal[signal] = by_signal.get(signal, 0) + 1
        for bank in sorted({r.split(":", 1)[1] for r in rs if "@v" in r}):
            by_bank[bank] = by_bank.get(bank, 0) + 1
    by_reason: dict[str, int] = {}
    for reason in quarantined.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    result = CleanResult(
        shard=task.shard_name,
        rows_in=rows_in,
        rows_kept=rows_in - len(gone),
        rows_removed=len(reasons),
        rows_quarantined=len(quarantined),
        action=action,
        sha256=sha,
        size=sum(os.path.getsize(p) for p in outputs),
        by_signal=by_signal,
        by_bank=by_bank,
        quarantined_by_reason=by_reason,
        plan=plan,
        seconds=0.0,
        images_low_quality=low_quality,
        by_rule=decided.by_rule,
        cancelled=decided.cancelled,
        review=review,
    )
    marker_data = asdict(result)
    marker_data["resumed"] = False
    marker_data["rows_plan"] = same
    done.mark_done(marker, marker_data, tmp_dir)
    result.seconds = time.perf_counter() - started
    return result


def _confirm_source(task: CleanTask, written: str = "") -> str:
    """The bytes about to be published must be the bytes that were indexed and matched.

    The index trusts size and mtime to skip re-hashing; a shard rewritten in place with its mtime
    restored would otherwise have the wrong rows removed and its flagged rows published.

    Called again once the shard was read (``written``: the hash of what was written, returned): a
    remote object replaced between the first check and the read has its tag changed, and the rows
    read from it were not the ones indexed. Local shards are hashed, not tagged: not checked twice.
    """
    if written and is_sha256(task.shard_sha256):
        return written
    if shard_identity(task.shard.files) != task.shard_sha256:
        raise StaleShardError(task.shard_name, task.shard.location)
    return written


def _keys_of_rows(task: CleanTask, rows: list[int]) -> list[str]:
    """Sample keys (tar keys, file names) of the given rows, from the index's sample-to-row links.

    Never from the key column's values: those are spelled as the metadata spells them (``1`` for the
    tar's ``000000001``), and the index has already linked every sample to its row or refused the shard.
    """
    samples = read_parquet(Path(task.index_dir) / "samples.parquet", columns=["row", "key"])
    wanted = set(rows)
    links = zip(samples.column("key").to_pylist(), samples.column("row").to_pylist(), strict=True)
    return sorted({k for k, r in links if r in wanted})


def _previous_names(path: Path, gone: list[int]) -> dict[str, pa.Array] | None:
    """The row names of the shard's last records when they list the same rows: a list update that only
    changes why rows go renames nothing, so the shard is not read again to hash its URLs and keys."""
    try:
        table, _ = read_records(path)
    except (OSError, pa.ArrowException, ValueError, KeyError):
        return None  # unreadable or older records: the names are computed afresh
    if table.column("row").to_pylist() != gone:
        return None
    return {
        "row_key": table.column("row_key").combine_chunks(),
        "key_hash": table.column("key_hash").combine_chunks(),
    }


def _names(task: CleanTask, gone: list[int], values: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Keyed hashes of the gone rows' URLs and sample keys, from their values (read once, by whoever
    read the shard)."""
    urls: list[bytes | None] = [None] * len(gone)
    keys: list[str | None] = [None] * len(gone)
    shard = task.shard
    if shard.metadata and task.url_column and task.url_column in values:
        text = as_text(values[task.url_column], shard.metadata, task.url_column)
        urls = as_binary(text).to_pylist()
    if shard.metadata and task.key_column and task.key_column in values:
        keys = [None if k is None else str(k) for k in values[task.key_column].to_pylist()]
    if gone and task.shard.handler.sample_key_names_row:  # samples with no metadata row: their sample key
        samples = read_parquet(Path(task.index_dir) / "samples.parquet", columns=["row", "key"])
        by_row = dict(zip(samples.column("row").to_pylist(), samples.column("key").to_pylist(), strict=True))
        keys = [k if k is not None else by_row.get(r) for k, r in zip(keys, gone, strict=True)]
    key_hashes = [
        None
        if k is None
        else hashlib.blake2b(
            str(k).encode("utf-8"), key=task.key, digest_size=16, person=b"sample-key"
        ).digest()
        for k in keys
    ]
    return {
        "row_key": pa.array(keyed_hash(urls, task.key), pa.binary(16)),
        "key_hash": pa.array(key_hashes, pa.binary(16)),
    }


def _read_names(task: CleanTask, gone: list[int]) -> dict[str, pa.Array]:
    """The gone rows' names when nothing read their values yet: one streaming pass per column."""
    shard, fmt = task.shard, task.shard.handler
    values: dict[str, pa.Array] = {}
    if gone and shard.metadata and task.url_column:
        urls = fmt.values_at(shard, task.url_column, gone, as_binary)
        values[task.url_column] = pa.array(urls, pa.binary())
    if gone and shard.metadata and task.key_column:
        keys = fmt.values_at(shard, task.key_column, gone)
        values[task.key_column] = pa.array([None if k is None else str(k) for k in keys], pa.string())
    return _names(task, gone, values)


def _write_records(
    task: CleanTask,
    gone: list[int],
    reasons: dict[int, list[str]],
    quarantined: dict[int, str],
    path: Path,
    tmp_dir: Path,
    named: dict[str, pa.Array] | None = None,
) -> None:
    names = named if named is not None else _read_names(task, gone)
    table = pa.table(
        {
            "row_key": names["row_key"],
            "shard": pa.array([task.shard_name] * len(gone), pa.string()),
            "row": pa.array(gone, pa.int64()),
            "key_hash": names["key_hash"],
            "action": pa.array(["removed" if r in reasons else "quarantined" for r in gone], pa.string()),
            "reasons": pa.array(
                [sorted(reasons[r]) if r in reasons else [f"quarantine:{quarantined[r]}"] for r in gone],
                pa.list_(pa.string()),
            ),
        },
        schema=RECORD_SCHEMA,
    )
    # The files this shard put in the release (relative to it), so the orchestrator can tell its own
    # outputs from anything else in the folder: a stale file is never published by accident.
    outputs: list[str] = []
    if task.out_root:
        root = Path(task.out_root)
        planned = _outputs(task, _drop_keys(task, gone))
        outputs = sorted(p.relative_to(root).as_posix() for p in planned.files)
    table = table.replace_schema_metadata({OUTPUTS_META: json.dumps(outputs)})
    with atomic.atomic_path(path, tmp_dir) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_records(path: Path) -> tuple[pa.Table, list[str] | None]:
    """A shard's removal records, and the release files the shard wrote (None for records from before
    they were listed: the shard is then redone, never trusted)."""
    table = read_parquet(path)
    meta = table.schema.metadata or {}
    outputs = json.loads(meta[OUTPUTS_META]) if OUTPUTS_META in meta else None
    return table.replace_schema_metadata(None).cast(RECORD_SCHEMA), outputs
