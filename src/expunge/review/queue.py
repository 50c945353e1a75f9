"""The review queue: every candidate a review rule raised, and where it stands with the hotline.

One parquet file per dataset in the store, rewritten whole on every change (one rename commits it) and
sorted by (shard, row), so identical histories leave identical bytes. A candidate is named outside the
store only by its review id, a keyed hash: an id reveals nothing about the row without the store's key,
and it is stable, so a verdict returned months later still finds its row.

Life of a candidate: ``queued`` (raised by a clean) -> ``exported`` (sent in a package) -> ``decided``
(a verdict came back). A decided row is never queued again, whatever later cleans raise: a "not" stays
published, a "confirmed" stays removed, an "unsure" stays withheld until a new verdict arrives.
Callers hold the store lock; this module does not lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import empty_table, read_parquet
from expunge.errors import ExpungeError

VERDICTS = ("confirmed", "not", "unsure")
STATES = ("queued", "exported", "decided")
PENDING = "pending"  # rows_by_verdict's name for queued or exported rows without a verdict
ID_HEX = 24  # 12-byte digests: collisions are out of reach for any real queue

QUEUE_FILE = "queue.parquet"
_FORMAT = b"expunge-review-queue-1"
_PERSON = b"review"
_SIGNAL_NAME = re.compile(r"[A-Za-z0-9_.:/@+-]{1,128}")

SCHEMA = pa.schema(
    [
        pa.field("review_id", pa.string()),
        pa.field("shard", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("rules", pa.list_(pa.string())),
        pa.field("signals", pa.string()),
        pa.field("state", pa.string()),
        pa.field("verdict", pa.string()),
        pa.field("decided_by", pa.string()),
        pa.field("decided_at", pa.string()),
        pa.field("exported_at", pa.string()),
        pa.field("queued_at", pa.string()),
        pa.field("round", pa.int32()),
    ]
)
_REQUIRED = ("review_id", "shard", "row", "rules", "signals", "state", "queued_at", "round")


@dataclass(frozen=True)
class Candidates:
    """Rows a review rule decided in one clean; the four fields run in parallel."""

    shard: list[str]
    row: np.ndarray
    rules: list[list[str]]
    signals: list[str]


def check_time(now: str) -> str:
    """Timestamps are ISO-8601 in UTC, so the store sorts and compares them as written."""
    try:
        parsed = dt.datetime.fromisoformat(now)
    except (TypeError, ValueError):
        raise ValueError("timestamp is not ISO-8601") from None
    if parsed.utcoffset() != dt.timedelta(0):
        raise ValueError("timestamp is not in UTC")
    return now


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signals(text: str) -> dict[str, float | int | None]:
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError("signals are not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("signals must be a JSON object of signal name -> number")
    for name, value in obj.items():
        if not _SIGNAL_NAME.fullmatch(name):
            raise ValueError("a signal name has characters outside [A-Za-z0-9_.:/@+-] or is too long")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("a signal value is not a finite number (or null)")
    return obj


def _dump(obj: dict[str, float | int | None]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_signals(text: str) -> str:
    """Signals as compact JSON with sorted keys: numbers only (or null for a missing score), never text,
    so a package can never carry a caption or a term, and equal signals are equal strings."""
    return _dump(_signals(text))


def _merged(cands: Candidates) -> dict[tuple[str, int], tuple[list[str], str]]:
    """One entry per (shard, row): rules unioned, signals merged (later wins), so a row two review rules
    raised is queued once."""
    rows = np.asarray(cands.row)
    n = len(cands.shard)
    if not (len(rows) == len(cands.rules) == len(cands.signals) == n):
        raise ValueError("Candidates fields differ in length")
    if n and (rows.dtype.kind not in "iu" or int(rows.min()) < 0):
        raise ValueError("Candidates rows must be non-negative integers")
    canonical: dict[str, str] = {}  # many rows share their signals text: check and rewrite each once
    out: dict[tuple[str, int], tuple[list[str], str]] = {}
    for shard, row, rules, signals in zip(
        cands.shard, rows.tolist(), cands.rules, cands.signals, strict=True
    ):
        if not isinstance(shard, str) or not shard:
            raise ValueError("Candidates shard names must be non-empty strings")
        if any(not isinstance(r, str) or not r or ";" in r or not r.isprintable() for r in rules):
            raise ValueError("Candidates rule names must be non-empty printable strings without ';'")
        key = (shard, int(row))
        sig = canonical.get(signals)
        if sig is None:
            sig = canonical[signals] = canonical_signals(signals)
        if key in out:
            old_rules, old_sig = out[key]
            rules = [*old_rules, *rules]
            sig = _dump({**_signals(old_sig), **_signals(sig)})
        out[key] = (sorted(set(rules)), sig)
    return out


def _frozen(rows: list[int]) -> np.ndarray:
    arr = np.sort(np.asarray(rows, dtype=np.int64))
    arr.setflags(write=False)
    return arr


@dataclass
class _Loaded:
    stat: tuple[int, int, int]
    table: pa.Table
    last_round: int
    by_shard: dict[str, dict[str, np.ndarray]] | None = field(default=None)


class ReviewQueue:
    def __init__(self, path: Path, key: bytes, dataset_id: str, tmp: Path) -> None:
        self.path = Path(path)
        self._key = key
        self.dataset_id = dataset_id
        self.tmp = Path(tmp)
        self._loaded: _Loaded | None = None

    def review_id(self, shard: str, row: int) -> str:
        """Keyed BLAKE2b of (dataset, shard, row), length-prefixed so no two triples share an input."""
        ds, sh = self.dataset_id.encode("utf-8"), shard.encode("utf-8")
        msg = b"".join(
            (len(ds).to_bytes(8, "big"), ds, len(sh).to_bytes(8, "big"), sh, int(row).to_bytes(8, "big"))
        )
        return hashlib.blake2b(msg, key=self._key, digest_size=ID_HEX // 2, person=_PERSON).hexdigest()

    # reading
    def _state(self) -> _Loaded:
        """The file as it is now: re-read when it changed on disk (another queue object wrote it)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._loaded is None or self._loaded.stat != (0, 0, 0):
                self._loaded = _Loaded((0, 0, 0), empty_table(SCHEMA), 0)
            return self._loaded
        stat = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._loaded is None or self._loaded.stat != stat:
            table, last_round = self._read()
            self._loaded = _Loaded(stat, table, last_round)
        return self._loaded

    def _read(self) -> tuple[pa.Table, int]:
        unreadable = "review queue is not in a format this expunge reads; refusing to guess"
        try:
            table = read_parquet(self.path)
        except (OSError, pa.ArrowException):
            raise ExpungeError(
                "review queue cannot be read (damaged?); refusing to guess", self.path
            ) from None
        meta = table.schema.metadata or {}
        if meta.get(b"format") != _FORMAT or not table.schema.remove_metadata().equals(SCHEMA):
            raise ExpungeError(unreadable, self.path)
        try:
            last_round = int(meta.get(b"round", b""))
        except ValueError:
            raise ExpungeError(unreadable, self.path) from None
        cols = table.select(["state", "verdict"]).to_pydict()
        bad = any(table.column(c).null_count for c in _REQUIRED) or any(
            s not in STATES or (v is not None and v not in VERDICTS) or ((s == "decided") != (v is not None))
            for s, v in zip(cols["state"], cols["verdict"], strict=True)
        )
        if bad:
            raise ExpungeError("review queue holds a state or verdict this expunge does not know", self.path)
        return table, last_round

    def table(self) -> pa.Table:
        return self._state().table

    def last_round(self) -> int:
        """The last export round (0 before the first export); rounds count every export, empty or not."""
        return self._state().last_round

    def _by_shard(self) -> dict[str, dict[str, np.ndarray]]:
        loaded = self._state()
        if loaded.by_shard is None:
            cols = loaded.table.select(["shard", "row", "verdict"]).to_pydict()
            lists: dict[str, dict[str, list[int]]] = {}
            for shard, row, verdict in zip(cols["shard"], cols["row"], cols["verdict"], strict=True):
                per = lists.setdefault(shard, {})
                per.setdefault(verdict or PENDING, []).append(row)
            loaded.by_shard = {shard: {k: _frozen(v) for k, v in per.items()} for shard, per in lists.items()}
        return loaded.by_shard

    def rows_by_verdict(self, shard: str) -> dict[str, np.ndarray]:
        """Every key is present: confirmed, not, unsure, pending (queued or exported, undecided).
        The arrays are read-only (they are shared with the cache)."""
        per = self._by_shard().get(shard, {})
        return {k: per.get(k, _frozen([])) for k in (*VERDICTS, PENDING)}

    def confirmed(self) -> dict[str, np.ndarray]:
        return {s: per["confirmed"] for s, per in sorted(self._by_shard().items()) if "confirmed" in per}

    def counts(self) -> dict[str, int]:
        cols = self.table().select(["state", "verdict"]).to_pydict()
        out = dict.fromkeys(("queued", "exported", *VERDICTS), 0)
        for state, verdict in zip(cols["state"], cols["verdict"], strict=True):
            out[verdict if verdict is not None else state] += 1
        return out

    # writing
    def _save(self, cols: dict[str, list[Any]], last_round: int) -> None:
        order = sorted(range(len(cols["shard"])), key=lambda i: (cols["shard"][i], cols["row"][i]))
        arrays = [pa.array([cols[f.name][i] for i in order], f.type) for f in SCHEMA]
        table = pa.Table.from_arrays(arrays, schema=SCHEMA).replace_schema_metadata(
            {"format": _FORMAT, "round": str(last_round)}
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(self.path, self.tmp) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        self._loaded = None

    def forget_shard(self, shard: str) -> dict[str, int]:
        """Drop every row of one shard (whatever its state): for a shard whose content changed, whose
        row indices no longer name the rows that were reviewed. Returns what was dropped, by state or
        verdict; the next clean queues the shard's candidates afresh."""
        table = self.table()
        cols = table.to_pydict()
        keep = [i for i, name in enumerate(cols["shard"]) if name != shard]
        dropped: dict[str, int] = dict.fromkeys(("queued", "exported", *VERDICTS), 0)
        for i, name in enumerate(cols["shard"]):
            if name == shard:
                verdict = cols["verdict"][i]
                dropped[verdict if verdict is not None else cols["state"][i]] += 1
        if len(keep) != len(cols["shard"]):
            self._save({k: [v[i] for i in keep] for k, v in cols.items()}, self.last_round())
        return dropped

    def enqueue(self, cands: Candidates, now: str) -> int:
        """Add rows not yet known; refresh the rules and signals of known undecided rows; never touch a
        decided one. Returns how many rows were new."""
        check_time(now)
        merged = _merged(cands)
        loaded = self._state()
        cols: dict[str, list[Any]] = loaded.table.to_pydict()
        where = {key: i for i, key in enumerate(zip(cols["shard"], cols["row"], strict=True))}
        new = 0
        changed = False
        for (shard, row), (rules, signals) in sorted(merged.items()):
            i = where.get((shard, row))
            if i is None:
                entry = {
                    "review_id": self.review_id(shard, row),
                    "shard": shard,
                    "row": row,
                    "rules": rules,
                    "signals": signals,
                    "state": "queued",
                    "verdict": None,
                    "decided_by": None,
                    "decided_at": None,
                    "exported_at": None,
                    "queued_at": now,
                    "round": 0,
                }
                for name, value in entry.items():
                    cols[name].append(value)
                new += 1
                changed = True
            elif cols["verdict"][i] is None and (cols["rules"][i], cols["signals"][i]) != (rules, signals):
                cols["rules"][i], cols["signals"][i] = rules, signals
                changed = True
        if changed:
            self._save(cols, loaded.last_round)
        return new

    def mark_exported(self, review_ids: Sequence[str], now: str, round_: int) -> None:
        """Record an export round (used by ``export``). Queued rows become exported; rows sent again keep
        their state (an unsure row stays decided, and withheld, until a new verdict arrives)."""
        check_time(now)
        loaded = self._state()
        if round_ <= loaded.last_round:
            raise ValueError("export rounds only increase")
        cols: dict[str, list[Any]] = loaded.table.to_pydict()
        where = {rid: i for i, rid in enumerate(cols["review_id"])}
        for rid in review_ids:
            i = where[rid]
            if cols["state"][i] == "queued":
                cols["state"][i] = "exported"
            cols["exported_at"][i] = now
            cols["round"][i] = round_
        self._save(cols, round_)

    def apply_verdicts(
        self, verdicts: Sequence[tuple[str, str, str]], now: str
    ) -> tuple[dict[str, int], int, int]:
        """Record (review_id, verdict, decided_by) triples (used by ``import_verdicts``), all or nothing.

        A different verdict for a decided row replaces it (a hotline may correct itself); the same verdict
        again changes nothing. Returns (rows decided or changed, per verdict), unchanged, changed.
        """
        check_time(now)
        loaded = self._state()
        cols: dict[str, list[Any]] = loaded.table.to_pydict()
        where = {rid: i for i, rid in enumerate(cols["review_id"])}
        if any(rid not in where for rid, _, _ in verdicts):
            raise ValueError("a verdict names a review id this queue does not hold")
        decided = dict.fromkeys(VERDICTS, 0)
        unchanged = changed = 0
        for rid, verdict, by in verdicts:
            if verdict not in VERDICTS:
                raise ValueError("unknown verdict")
            i = where[rid]
            if cols["verdict"][i] == verdict:
                unchanged += 1
                continue
            changed += cols["verdict"][i] is not None
            decided[verdict] += 1
            cols["state"][i], cols["verdict"][i] = "decided", verdict
            cols["decided_by"][i], cols["decided_at"][i] = by, now
        if sum(decided.values()):
            self._save(cols, loaded.last_round)
        return decided, unchanged, changed


def queue_path(review_dir: Path) -> Path:
    """The queue file inside ``Store.review_dir(dataset_id)``."""
    return review_dir / QUEUE_FILE
