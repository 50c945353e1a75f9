"""Decide every row of a shard from its soft signals, with whole-array numpy operations.

Semantics (decided for issue 10; the pipeline relies on them exactly):

- Hash-list findings always remove (implicit rule ``hash-lists``) and hotline-confirmed rows always remove
  (implicit rule ``review-confirmed``); the pipeline applies both before and regardless of this evaluator,
  so no policy rule (not even ``keep``) can weaken them. Here only the policy's own rules are evaluated.
- Rules run in file order and the first rule that decides a row wins, like a firewall.
- Logic is three-valued (Kleene). A missing value (NaN: the row has no score, or the column is null there)
  is UNKNOWN, and so is any comparison with it. ``unknown and false = false``, ``unknown or true = true``,
  ``not unknown = unknown``. ``-inf`` means "below every threshold the store kept": known, and false in any
  comparison.
- ``remove``: true -> REMOVE; unknown -> QUARANTINE (fail closed; the reason is "missing");
  false -> next rule.
- ``review``: true or unknown -> REVIEW; false -> next rule. Rows a hotline rejected (``rejected``) skip
  review rules (false for them) so they are not queued again; remove and keep rules still apply to them.
- ``keep``: true -> KEEP (published, later rules not asked); unknown or false -> next rule (an unknown never
  keeps).
- No rule decides -> PUBLISH.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expunge.policy.parse import And, Compare, Expr, Flag, Not, Or, Policy

PUBLISH, REMOVE, REVIEW, KEEP, QUARANTINE = 0, 1, 2, 3, 4
ACTION_CODES = {"remove": REMOVE, "review": REVIEW, "keep": KEEP}


@dataclass
class RowSignals:
    n: int
    flags: dict[str, np.ndarray]  # "bank", "bank.NAME", "keyword", "keyword.NAME" -> bool[n]
    values: dict[str, np.ndarray]  # "score.COL", "neighbour", "nsfw" -> float64[n]; NaN missing, -inf below
    rejected: np.ndarray | None = None  # bool[n]: rows a hotline said "not" about skip review rules


@dataclass
class Decision:
    action: np.ndarray  # int8[n]: PUBLISH, REMOVE, REVIEW, KEEP, QUARANTINE
    rule: np.ndarray  # int16[n]: index into policy.rules of the deciding rule; -1 where none decided


def _column(table: dict[str, np.ndarray], key: str, n: int, dtype: type) -> np.ndarray:
    if key not in table:
        raise KeyError(f"row signals lack `{key}`, which the policy uses")
    arr: np.ndarray = np.asarray(table[key], dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"row signal `{key}` has shape {arr.shape}, expected ({n},)")
    return arr


def _truth(expr: Expr, sig: RowSignals) -> tuple[np.ndarray, np.ndarray]:
    """(true, unknown) bool arrays; false is where neither is set."""
    n = sig.n
    if isinstance(expr, Flag):
        key = expr.kind if expr.name is None else f"{expr.kind}.{expr.name}"
        return _column(sig.flags, key, n, bool), np.zeros(n, dtype=bool)
    if isinstance(expr, Compare):
        v = _column(sig.values, expr.ref, n, np.float64)
        unknown = np.isnan(v)
        with np.errstate(invalid="ignore"):
            true = v > expr.value if expr.op == ">" else v >= expr.value
        return true & ~unknown, unknown
    if isinstance(expr, Not):
        t, u = _truth(expr.arg, sig)
        return ~t & ~u, u
    parts = [_truth(a, sig) for a in expr.args]
    if isinstance(expr, And):
        true = np.logical_and.reduce([t for t, _ in parts])
        false = np.logical_or.reduce([~t & ~u for t, u in parts])
    else:
        assert isinstance(expr, Or)
        true = np.logical_or.reduce([t for t, _ in parts])
        false = np.logical_and.reduce([~t & ~u for t, u in parts])
    return true, ~true & ~false


def evaluate(policy: Policy, signals: RowSignals) -> Decision:
    """Every row's action and deciding rule; a signal the policy uses but ``signals`` lacks is a KeyError."""
    n = signals.n
    action = np.full(n, PUBLISH, dtype=np.int8)
    rule_of = np.full(n, -1, dtype=np.int16)
    open_ = np.ones(n, dtype=bool)
    rejected = (
        np.zeros(n, dtype=bool)
        if signals.rejected is None
        else _column({"rejected": signals.rejected}, "rejected", n, bool)
    )
    for i, rule in enumerate(policy.rules):
        true, unknown = _truth(rule.when, signals)
        if rule.action == "remove":
            decided = [(true & open_, REMOVE), (unknown & open_, QUARANTINE)]
        elif rule.action == "review":
            decided = [((true | unknown) & open_ & ~rejected, REVIEW)]
        else:
            decided = [(true & open_, KEEP)]
        for mask, code in decided:
            action[mask] = code
            rule_of[mask] = i
            open_ &= ~mask
    return Decision(action, rule_of)
