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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import atomic
from expunge.formats import parquet as pqfmt
from expunge.index.build import read_quarantine
from expunge.match.stage import BankRef, read_findings
from expunge.signals.digest import as_binary
from expunge.signals.features import QUARANTINE_REASONS

RECORD_SCHEMA = pa.schema(
    [
        ("row_key", pa.binary(16)),
        ("shard", pa.string()),
        ("row", pa.int64()),
        ("action", pa.string()),
        ("reasons", pa.list_(pa.string())),
    ]
)
PLAN_FORMAT = 1


@dataclass(frozen=True)
class CleanTask:
    shard_name: str
    shard_path: str
    shard_sha256: str
    url_column: str
    index_dir: str
    findings_path: str
    banks: tuple[BankRef, ...]
    bank_signals: tuple[str, ...]  # signal type of each bank, same order
    out_path: str
    state_dir: str  # OUT/.expunge
    tmp_dir: str
    key: bytes


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


def marker_paths(state_dir: Path, shard_name: str) -> tuple[Path, Path]:
    """A shard's completion marker and removal records in the release's state folder."""
    tag = hashlib.sha256(shard_name.encode("utf-8")).hexdigest()[:12]
    base = f"{Path(shard_name).name}.{tag}"
    return state_dir / "shards" / f"{base}.json", state_dir / "shards" / f"{base}.removed.parquet"


def keyed_hash(values: list[bytes | None], key: bytes) -> list[bytes | None]:
    """Keyed BLAKE2b of each URL: names a row stably for the key holder, reveals nothing to others."""
    return [None if v is None else hashlib.blake2b(v, key=key, digest_size=16).digest() for v in values]


def _decide(task: CleanTask) -> tuple[np.ndarray, dict[int, list[str]], dict[int, str]]:
    q = read_quarantine(Path(task.index_dir))
    findings = read_findings(Path(task.findings_path))
    reasons: dict[int, list[str]] = {}
    if findings.num_rows:
        for ref, signal in zip(task.banks, task.bank_signals, strict=True):
            sel = findings.filter(pc.equal(findings.column("bank"), ref.name))
            if sel.num_rows and set(sel.column("bank_version").to_pylist()) != {ref.version}:
                raise RuntimeError(f"findings for {task.shard_name} are stale for bank {ref.name}")
            for row in np.unique(sel.column("row").to_numpy()).tolist():
                reasons.setdefault(int(row), []).append(f"{signal}:{ref.name}@v{ref.version}")
    quarantined = {int(r): QUARANTINE_REASONS[int(q[r])] for r in np.flatnonzero(q) if int(r) not in reasons}
    return q, reasons, quarantined


def clean_shard(task: CleanTask) -> CleanResult:
    started = time.perf_counter()
    q, reasons, quarantined = _decide(task)
    rows_in = len(q)
    plan = hashlib.sha256(
        json.dumps(
            [PLAN_FORMAT, task.shard_sha256, sorted(reasons.items()), sorted(quarantined.items())],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    state_dir = Path(task.state_dir)
    marker, records_path = marker_paths(state_dir, task.shard_name)
    out = Path(task.out_path)
    if marker.is_file() and records_path.is_file() and out.is_file():
        done = atomic.read_json(marker)
        if done.get("plan") == plan and os.path.getsize(out) == done.get("size"):
            result = CleanResult(**done)
            result.resumed = True
            return result
    tmp_dir = Path(task.tmp_dir)
    gone = sorted(set(reasons) | set(quarantined))
    if not gone:
        action = atomic.copy_or_link(Path(task.shard_path), out, tmp_dir)
        sha = task.shard_sha256
    else:
        keep = np.ones(rows_in, dtype=bool)
        keep[gone] = False
        with atomic.atomic_path(out, tmp_dir) as tmp:
            written = pqfmt.rewrite(task.shard_path, tmp, keep)
            if written != int(keep.sum()):
                raise RuntimeError(f"{task.shard_name}: wrote {written} rows, expected {int(keep.sum())}")
        action = "rewritten"
        sha = pqfmt.file_sha256(str(out))
    _write_records(task, gone, reasons, quarantined, records_path, tmp_dir)
    by_signal: dict[str, int] = {}
    by_bank: dict[str, int] = {}
    for rs in reasons.values():
        for signal in sorted({r.split(":", 1)[0] for r in rs}):
            by_signal[signal] = by_signal.get(signal, 0) + 1
        for bank in sorted({r.split(":", 1)[1] for r in rs}):
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
        size=os.path.getsize(out),
        by_signal=by_signal,
        by_bank=by_bank,
        quarantined_by_reason=by_reason,
        plan=plan,
        seconds=0.0,
    )
    marker_data = asdict(result)
    marker_data["resumed"] = False
    atomic.write_json(marker, marker_data, tmp_dir)
    result.seconds = time.perf_counter() - started
    return result


def _write_records(
    task: CleanTask,
    gone: list[int],
    reasons: dict[int, list[str]],
    quarantined: dict[int, str],
    path: Path,
    tmp_dir: Path,
) -> None:
    urls: list[bytes | None] = []
    if gone:
        wanted = np.array(gone, dtype=np.int64)
        start = 0
        for col in pqfmt.iter_column(task.shard_path, task.url_column):
            n = len(col)
            lo, hi = np.searchsorted(wanted, [start, start + n])
            if hi > lo:
                urls.extend(as_binary(col).take(pa.array(wanted[lo:hi] - start)).to_pylist())
            start += n
    table = pa.table(
        {
            "row_key": pa.array(keyed_hash(urls, task.key), pa.binary(16)),
            "shard": pa.array([task.shard_name] * len(gone), pa.string()),
            "row": pa.array(gone, pa.int64()),
            "action": pa.array(["removed" if r in reasons else "quarantined" for r in gone], pa.string()),
            "reasons": pa.array(
                [sorted(reasons[r]) if r in reasons else [f"quarantine:{quarantined[r]}"] for r in gone],
                pa.list_(pa.string()),
            ),
        },
        schema=RECORD_SCHEMA,
    )
    with atomic.atomic_path(path, tmp_dir) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_records(path: Path) -> pa.Table:
    return pq.read_table(path).cast(RECORD_SCHEMA)
