"""What happens to each row of one shard: removed (and why), quarantined (and why), or published.

One function, :func:`decide`, used twice with the same inputs: by the flood guard's tally before anything
is written, and by the clean task that writes. Its inputs are all in the store: the shard's findings
(hash lists), its soft findings (scores, keywords, nudity scores), the dataset's neighbour findings, the
negative banks, the review queue's verdicts and the policy. The precedence is fixed, strongest first:

1. hash-list findings remove (rule ``hash-lists``), unless the matched value is in a negative bank of
   the same feature (then the finding is cancelled and counted);
2. rows a hotline confirmed remove (rule ``review-confirmed``);
3. the policy's own rules, first match wins (``expunge.policy.evaluate``): remove, quarantine where a
   value it needs is missing, review (withheld as ``review:pending`` until a verdict), or keep;
4. rows that cannot be checked are quarantined (URL, image);
5. cover rows are removed to hide the flagged ones.

A shard whose bytes changed since the review queue named its rows is withheld whole (``review:stale``)
after step 1: its verdicts and candidates name rows of the old content.

A policy can add removals; it can never publish a row a hash list or a verdict removes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.arrow import read_parquet
from expunge.features.url import QUARANTINE_REASONS
from expunge.index.build import read_quarantine
from expunge.lists.bank import load_bank
from expunge.match.stage import BankRef, findings_state, read_findings
from expunge.policy.evaluate import QUARANTINE, REMOVE, REVIEW, RowSignals, evaluate
from expunge.policy.parse import Policy
from expunge.stages import done
from expunge.store import Store

#: Reason of a row removed because a hotline confirmed it.
CONFIRMED = "review:confirmed"
#: Reason of every row of a shard whose content changed after its review rows were recorded.
STALE = "review:stale"


@dataclass(frozen=True)
class NegativeRef:
    """A negative bank (allow-list) and the feature whose findings it can cancel."""

    name: str
    version: int
    feature: str


@dataclass(frozen=True)
class ReviewRows:
    """One shard's rows by verdict, from the review queue (sorted row indices)."""

    confirmed: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()
    unsure: tuple[int, ...] = ()
    stale: bool = False  # the shard changed since these rows were recorded: they name other rows


@dataclass(frozen=True)
class ShardTriage:
    """Everything beyond the hash lists that decides a shard's rows."""

    policy: Policy
    soft_path: str | None = None  # the shard's soft findings (None: the policy needs none)
    neighbour_path: str | None = None  # the dataset's neighbour findings (None: no expansion)
    negatives: tuple[NegativeRef, ...] = ()
    review: ReviewRows = ReviewRows()
    store_root: str = ""


@dataclass
class Decided:
    rows_in: int
    reasons: dict[int, list[str]]  # removed rows → reasons
    quarantined: dict[int, str]  # quarantined rows → reason
    low_quality: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # removed rows per deciding rule
    cancelled: dict[str, int] = field(default_factory=dict)  # findings cancelled per negative bank
    review: dict[int, tuple[list[str], str]] = field(default_factory=dict)  # candidates → (rules, signals)


def _negative_values(triage: ShardTriage) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Feature → [(negative bank, its sorted values)]."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    store = Store(triage.store_root)
    for neg in triage.negatives:
        bank = load_bank(store, neg.name, neg.version)
        out.setdefault(neg.feature, []).append((neg.name, bank.values.values))
    return out


def _cancel(
    findings: pa.Table, features: dict[str, str], triage: ShardTriage | None, cancelled: dict[str, int]
) -> pa.Table:
    """Drop findings whose matched value a negative bank of the same feature holds."""
    if triage is None or not triage.negatives or findings.num_rows == 0:
        return findings
    negatives = _negative_values(triage)
    keep = np.ones(findings.num_rows, dtype=bool)
    banks = findings.column("bank").to_numpy(zero_copy_only=False)
    values = findings.column("value").to_pylist()
    for bank, feature in features.items():
        allow = negatives.get(feature)
        if not allow:
            continue
        idx = np.flatnonzero(banks == bank)
        if not len(idx):
            continue
        width = allow[0][1].dtype.itemsize
        vals = np.array([values[i] for i in idx], dtype=f"S{width}")
        for name, allowed in allow:
            if not len(allowed):
                continue  # an empty allow-list (--allow-empty) clears nothing
            pos = np.searchsorted(allowed, vals)
            hit = (pos < len(allowed)) & (allowed[np.minimum(pos, len(allowed) - 1)] == vals) & keep[idx]
            if hit.any():
                cancelled[name] = cancelled.get(name, 0) + int(hit.sum())
                keep[idx[hit]] = False
    return findings.filter(pa.array(keep)) if not keep.all() else findings


def _soft_signals(
    n: int, bank_rows: dict[str, np.ndarray], triage: ShardTriage, shard: str
) -> tuple[RowSignals, dict[str, np.ndarray]]:
    """The policy's inputs for one shard: flags (bank, keyword) and values (scores, nsfw, neighbour)."""
    flags: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    any_bank = np.zeros(n, dtype=bool)
    for name, rows in bank_rows.items():
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        flags[f"bank.{name}"] = mask
        any_bank |= mask
    flags["bank"] = any_bank
    policy = triage.policy
    for kw in policy.keyword_refs():
        flags.setdefault("keyword" if kw is None else f"keyword.{kw}", np.zeros(n, dtype=bool))
    for ref in _value_refs(policy):
        values[ref] = np.full(n, -np.inf)
    if triage.soft_path and Path(triage.soft_path).is_file():
        soft = read_findings(Path(triage.soft_path))
        rows = soft.column("row").to_numpy()
        banks = soft.column("bank").to_numpy(zero_copy_only=False)
        score = soft.column("score").to_numpy(zero_copy_only=False).astype(np.float64)  # null → NaN
        signal = soft.column("signal").to_numpy(zero_copy_only=False)
        wanted = set(_value_refs(policy))
        for bank in np.unique(banks).tolist():
            if not (bank in wanted or bank.startswith("keyword.")):
                continue  # measured for another policy: not this one's input
            sel = banks == bank
            if signal[sel][0] == "keyword":
                for key in ("keyword", bank):
                    mask = flags.setdefault(key, np.zeros(n, dtype=bool))
                    mask[rows[sel]] = True
            else:  # "score.COL" or "nsfw": the largest value per row (nsfw: over a sample's images)
                arr = values.setdefault(bank, np.full(n, -np.inf))
                r, v = rows[sel], score[sel]
                missing = np.isnan(v)
                np.maximum.at(arr, r[~missing], v[~missing])
                arr[r[missing]] = np.nan  # a missing value is missing, whatever else the row has
    if triage.neighbour_path and Path(triage.neighbour_path).is_file():
        nb = read_parquet(triage.neighbour_path)
        nb = nb.filter(pc.equal(nb.column("shard"), shard))
        arr = values.setdefault("neighbour", np.full(n, -np.inf))
        with np.errstate(invalid="ignore"):  # NaN: a row without a usable embedding is missing
            np.maximum.at(arr, nb.column("row").to_numpy(), nb.column("cosine").to_numpy().astype(np.float64))
    rejected = np.zeros(n, dtype=bool)
    rejected[[r for r in triage.review.rejected if 0 <= r < n]] = True
    return RowSignals(n, flags, values, rejected), values


def _value_refs(policy: Policy) -> list[str]:
    return list(policy.value_refs())


def _signals_json(row: int, values: dict[str, np.ndarray], flags: dict[str, np.ndarray]) -> str:
    """A candidate's signals for the review queue: numbers only, never text."""
    out: dict[str, float | int | None] = {}
    for ref, arr in sorted(values.items()):
        v = float(arr[row])
        if np.isnan(v):
            out[ref] = None  # missing: the row has no value (no score, no usable embedding)
        elif np.isfinite(v):
            out[ref] = round(v, 6)
        # -inf: below every threshold the store kept, not missing; a null would tell the hotline so
    for ref, mask in sorted(flags.items()):
        if ref.startswith("keyword") and mask[row]:
            out[ref] = 1
    return json.dumps(out, sort_keys=True)


def decide(
    index_dir: Path,
    findings_path: Path,
    shard: str,
    banks: tuple[BankRef, ...],
    bank_signals: tuple[str, ...],
    bank_features: tuple[str, ...],
    triage: ShardTriage | None,
    *,
    url_scope: bool,
    image_scope: bool,
    quality_floor: int,
    cover_rows: tuple[int, ...],
) -> Decided:
    q = read_quarantine(index_dir)
    n = len(q)
    out = Decided(n, {}, {})
    findings = read_findings(findings_path)
    features = {ref.name: f for ref, f in zip(banks, bank_features, strict=True)}
    findings = _cancel(findings, features, triage, out.cancelled)
    reasons = out.reasons
    bank_rows: dict[str, np.ndarray] = {}
    if findings.num_rows:
        # Which bank versions the findings reflect: the match stage's state file, written after them. A
        # list update that matched nothing new in this shard moves only that file forward, so rows found
        # at an earlier version are current when the state says so.
        reflected = done.read_record(findings_state(findings_path)) or {}
        for ref, signal in zip(banks, bank_signals, strict=True):
            sel = findings.filter(pc.equal(findings.column("bank"), ref.name))
            current = reflected.get(ref.name) == ref.version
            if sel.num_rows and not current and set(sel.column("bank_version").to_pylist()) != {ref.version}:
                raise RuntimeError(f"findings for {shard} are stale for bank {ref.name}")
            rows = np.unique(sel.column("row").to_numpy())
            bank_rows[ref.name] = rows
            for row in rows.tolist():
                reasons.setdefault(int(row), []).append(f"{signal}:{ref.name}@v{ref.version}")
    if reasons:
        out.by_rule["hash-lists"] = len(reasons)
    quarantined = out.quarantined
    if triage is not None and triage.review.stale:
        # Its verdicts name rows of the old content: publish nothing of it, queue nothing from it.
        for r in range(n):
            if r not in reasons:
                quarantined[r] = STALE
        return out
    if triage is not None:
        for row in triage.review.confirmed:
            if row < n:
                reasons.setdefault(int(row), []).append(CONFIRMED)
        confirmed_only = sum(1 for r in triage.review.confirmed if r < n and reasons[r] == [CONFIRMED])
        if confirmed_only:
            out.by_rule["review-confirmed"] = confirmed_only
        if triage.policy.rules:
            _apply_policy(out, n, bank_rows, triage, shard)
    if url_scope:
        for r in np.flatnonzero(q).tolist():
            if r not in reasons:
                quarantined.setdefault(int(r), QUARANTINE_REASONS[int(q[r])])
    for row in cover_rows:
        if row not in reasons and row not in quarantined:
            reasons[row] = ["cover:removed"]
    if image_scope and (index_dir / "images.parquet").is_file():
        out.low_quality = _image_quarantine(index_dir, reasons, quarantined, quality_floor)
    return out


def _apply_policy(
    out: Decided, n: int, bank_rows: dict[str, np.ndarray], triage: ShardTriage, shard: str
) -> None:
    signals, values = _soft_signals(n, bank_rows, triage, shard)
    decision = evaluate(triage.policy, signals)
    rules = triage.policy.rules
    unsure = set(triage.review.unsure)
    for row in np.flatnonzero(decision.action != 0).tolist():
        if row in out.reasons:
            continue  # already removed by a hash list or a verdict: that is its cause
        action = int(decision.action[row])
        rule = rules[int(decision.rule[row])].name
        if action == REMOVE:
            out.reasons[row] = [f"rule:{rule}"]
            out.by_rule[rule] = out.by_rule.get(rule, 0) + 1
        elif action == QUARANTINE:
            out.quarantined[row] = f"missing:{rule}"
        elif action == REVIEW:
            out.quarantined[row] = "review:unsure" if row in unsure else "review:pending"
            out.review[row] = ([rule], _signals_json(row, values, signals.flags))
        # keep: published


def _image_quarantine(
    index_dir: Path, reasons: dict[int, list[str]], quarantined: dict[int, str], quality_floor: int
) -> int:
    """Rows with an image that failed to decode (and no removal) are quarantined; returns the number of
    decoded images below the PDQ quality floor."""
    images = read_parquet(index_dir / "images.parquet", columns=["row", "error", "pdq", "quality"])
    errors = images.column("error")
    if errors.null_count < len(errors):
        # One line per member: a row is quarantined when any of its members failed to decode and none
        # of them matched. Lines outside every sample (row -1) never carry an error (the index refuses).
        bad = images.filter(pc.and_(errors.is_valid(), pc.greater_equal(images.column("row"), 0)))
        for row, err in zip(bad.column("row").to_pylist(), bad.column("error").to_pylist(), strict=True):
            if row not in reasons:
                quarantined.setdefault(int(row), str(err))
    quality = images.column("quality").to_numpy(zero_copy_only=False)
    decoded = images.column("pdq").is_valid().to_numpy(zero_copy_only=False)
    return int((decoded & (np.nan_to_num(quality.astype(np.float64), nan=0) < quality_floor)).sum())
