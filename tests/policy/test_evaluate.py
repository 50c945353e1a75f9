"""The vectorised evaluator against Kleene truth tables, a per-row reference and the Re-LAION presets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.policy import (
    KEEP,
    PUBLISH,
    QUARANTINE,
    REMOVE,
    REVIEW,
    And,
    Compare,
    Expr,
    Flag,
    Not,
    Or,
    Policy,
    RowSignals,
    Rule,
    format_expr,
    load_policy,
    parse_expr,
)
from expunge.policy.evaluate import evaluate

NAN = math.nan


def policy(*rules: tuple[str, str]) -> Policy:
    """A policy from (action, when) pairs, named r0, r1, ..."""
    built = tuple(
        Rule(f"r{i}", action, parse_expr(when), format_expr(parse_expr(when)), None)
        for i, (action, when) in enumerate(rules)
    )
    return Policy("t", "", built, None, "preset:t", "0" * 64)


def signals(
    values: dict[str, list[float]],
    flags: dict[str, list[bool]] | None = None,
    rejected: list[bool] | None = None,
) -> RowSignals:
    n = len(next(iter(values.values()))) if values else len(next(iter((flags or {}).values())))
    return RowSignals(
        n,
        {k: np.array(v, dtype=bool) for k, v in (flags or {}).items()},
        {k: np.array(v, dtype=np.float64) for k, v in values.items()},
        None if rejected is None else np.array(rejected, dtype=bool),
    )


# ---------------------------------------------------------------------------------------------------
# Kleene truth tables, read through a single remove rule: REMOVE = true, QUARANTINE = unknown, PUBLISH = false

T, F, U = True, False, None
ENC = {T: 1.0, F: 0.0, U: NAN}  # `score.x > 0.5`
DEC = {REMOVE: T, PUBLISH: F, QUARANTINE: U}
AND = {(a, b): (F if F in (a, b) else (T if a is T and b is T else U)) for a in (T, F, U) for b in (T, F, U)}
OR = {(a, b): (T if T in (a, b) else (F if a is F and b is F else U)) for a in (T, F, U) for b in (T, F, U)}


def truth(when: str, columns: dict[str, list[float]]) -> list[bool | None]:
    d = evaluate(policy(("remove", when)), signals(columns))
    return [DEC[int(c)] for c in d.action]


def test_kleene_and_or() -> None:
    pairs = list(itertools.product((T, F, U), repeat=2))
    cols = {"score.a": [ENC[a] for a, _ in pairs], "score.b": [ENC[b] for _, b in pairs]}
    assert truth("score.a > 0.5 and score.b > 0.5", cols) == [AND[p] for p in pairs]
    assert truth("score.a > 0.5 or score.b > 0.5", cols) == [OR[p] for p in pairs]
    # spot checks of the rules in words
    assert AND[(U, F)] is F and OR[(U, T)] is T and AND[(U, T)] is U and OR[(U, F)] is U


def test_kleene_not_and_comparisons() -> None:
    cols = {"score.a": [1.0, 0.0, NAN, -math.inf, 0.5]}
    assert truth("not score.a > 0.5", cols) == [F, T, U, T, T]
    assert truth("score.a >= 0.5", cols) == [T, F, U, F, T]
    assert truth("score.a > 0.5", cols) == [T, F, U, F, F]
    assert truth("not not score.a > 0.5", cols) == [T, F, U, F, F]


def test_flags_are_never_unknown() -> None:
    d = evaluate(
        policy(("remove", "keyword.x or not bank")),
        signals({}, {"keyword.x": [True, False, False], "bank": [False, False, True]}),
    )
    assert d.action.tolist() == [REMOVE, REMOVE, PUBLISH]


# ---------------------------------------------------------------------------------------------------
# Actions and rule order


def test_actions_first_rule_wins() -> None:
    pol = policy(
        ("keep", "score.ok > 0.5"),
        ("remove", "score.bad > 0.9"),
        ("review", "score.bad > 0.5"),
    )
    ok = [1.0, 1.0, NAN, NAN, 0.0, 0.0, 0.0, NAN, 0.0]
    bad = [1.0, NAN, 1.0, NAN, 1.0, 0.7, NAN, 0.7, 0.1]
    d = evaluate(pol, signals({"score.ok": ok, "score.bad": bad}))
    assert d.action.tolist() == [KEEP, KEEP, REMOVE, QUARANTINE, REMOVE, REVIEW, QUARANTINE, REVIEW, PUBLISH]
    assert d.rule.tolist() == [0, 0, 1, 1, 1, 2, 1, 2, -1]
    assert d.action.dtype == np.int8 and d.rule.dtype == np.int16


def test_review_takes_unknown_and_skips_rejected() -> None:
    pol = policy(("review", "neighbour >= 0.9"), ("remove", "nsfw > 0.8"))
    d = evaluate(
        pol,
        signals(
            {"neighbour": [0.95, NAN, 0.95, NAN, 0.5], "nsfw": [0.0, 0.0, 0.9, NAN, 0.0]},
            rejected=[False, False, True, True, True],
        ),
    )
    # rejected rows fall through review rules but still meet the remove rule
    assert d.action.tolist() == [REVIEW, REVIEW, REMOVE, QUARANTINE, PUBLISH]
    assert d.rule.tolist() == [0, 0, 1, 1, -1]


def test_keep_never_keeps_on_unknown() -> None:
    pol = policy(("keep", "score.safe > 0.5 and bank.cleared"), ("remove", "score.x > 0.5"))
    d = evaluate(
        pol,
        signals(
            {"score.safe": [1.0, NAN, NAN, 1.0], "score.x": [1.0, 1.0, 0.0, 1.0]},
            {"bank.cleared": [True, True, False, False]},
        ),
    )
    assert d.action.tolist() == [KEEP, REMOVE, PUBLISH, REMOVE]
    assert d.rule.tolist() == [0, 1, -1, 1]


def test_no_rules_publish_everything() -> None:
    d = evaluate(load_policy("hash-only"), RowSignals(4, {}, {}))
    assert d.action.tolist() == [PUBLISH] * 4 and d.rule.tolist() == [-1] * 4
    assert evaluate(load_policy("hash-only"), RowSignals(0, {}, {})).action.shape == (0,)


def test_missing_signal_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match=r"keyword\.a\.b"):
        evaluate(policy(("remove", "keyword.a.b")), signals({}, {"keyword": [True]}))
    with pytest.raises(KeyError, match=r"score\.punsafe"):
        evaluate(load_policy("research"), signals({"nsfw": [0.1]}, {"keyword": [True]}))


def test_misaligned_signal_is_refused() -> None:
    bad = RowSignals(3, {"keyword": np.array([True, False])}, {})
    with pytest.raises(ValueError, match="shape"):
        evaluate(policy(("remove", "keyword")), bad)


# ---------------------------------------------------------------------------------------------------
# Presets


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_research_safe_keeps_exactly_punsafe_at_most_045(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    punsafe = rng.random(n)
    punsafe[rng.random(n) < 0.1] = NAN
    punsafe[rng.integers(0, n, 5)] = 0.45  # the boundary is kept
    keyword = rng.random(n) < 0.3
    d = evaluate(
        load_policy("research-safe"), RowSignals(n, {"keyword": keyword}, {"score.punsafe": punsafe})
    )
    missing = np.isnan(punsafe)
    with np.errstate(invalid="ignore"):
        kept = (punsafe <= 0.45) & ~((punsafe > 0.95) & keyword)
        first = (punsafe > 0.95) & keyword
    assert np.array_equal(d.action == PUBLISH, kept & ~missing)
    assert np.array_equal(d.action == QUARANTINE, missing)
    assert np.array_equal(d.action == REMOVE, ~kept & ~missing)
    assert np.array_equal(d.rule[first], np.zeros(first.sum(), dtype=np.int16))
    assert np.all(d.rule[(d.action == REMOVE) & ~first] == 1)
    assert not np.any(np.isin(d.action, [KEEP, REVIEW]))


def test_research_missing_punsafe() -> None:
    pol = load_policy("research")
    punsafe = [NAN, NAN, 0.99, 0.99, 0.5]
    keyword = [False, True, True, False, True]
    d = evaluate(pol, RowSignals(5, {"keyword": np.array(keyword)}, {"score.punsafe": np.array(punsafe)}))
    assert d.action.tolist() == [PUBLISH, QUARANTINE, REMOVE, PUBLISH, PUBLISH]
    assert d.rule.tolist() == [-1, 0, 0, -1, -1]


# ---------------------------------------------------------------------------------------------------
# Against a plain per-row reference

FLAG_KEYS = ("bank", "bank.a", "bank.x.y", "keyword", "keyword.k-1")
VALUE_KEYS = ("score.p", "score.q", "neighbour", "nsfw")
THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 1.0)
VALUES = (NAN, -math.inf, 0.0, 0.1, 0.25, 0.5, 0.6, 0.75, 1.0)


def _flag(key: str) -> Flag:
    kind, _, name = key.partition(".")
    return Flag(kind, name or None)


_leaves = st.builds(_flag, st.sampled_from(FLAG_KEYS)) | st.builds(
    Compare, st.sampled_from(VALUE_KEYS), st.sampled_from([">", ">="]), st.sampled_from(THRESHOLDS)
)
_exprs = st.recursive(
    _leaves,
    lambda kids: (
        st.builds(Not, kids)
        | st.builds(And, st.lists(kids, min_size=2, max_size=3).map(tuple))
        | st.builds(Or, st.lists(kids, min_size=2, max_size=3).map(tuple))
    ),
    max_leaves=8,
)


def ref_truth(expr: Expr, flags: dict[str, bool], values: dict[str, float]) -> bool | None:
    if isinstance(expr, Flag):
        return flags[expr.kind if expr.name is None else f"{expr.kind}.{expr.name}"]
    if isinstance(expr, Compare):
        v = values[expr.ref]
        if math.isnan(v):
            return None
        return v > expr.value if expr.op == ">" else v >= expr.value
    if isinstance(expr, Not):
        a = ref_truth(expr.arg, flags, values)
        return None if a is None else not a
    args = [ref_truth(a, flags, values) for a in expr.args]
    if isinstance(expr, And):
        return False if False in args else (True if all(a is True for a in args) else None)
    return True if True in args else (False if all(a is False for a in args) else None)


def ref_decide(
    pol: Policy, flags: dict[str, bool], values: dict[str, float], rejected: bool
) -> tuple[int, int]:
    for i, rule in enumerate(pol.rules):
        t = ref_truth(rule.when, flags, values)
        if rule.action == "remove":
            if t is True:
                return REMOVE, i
            if t is None:
                return QUARANTINE, i
        elif rule.action == "review":
            if t is not False and not rejected:
                return REVIEW, i
        elif t is True:
            return KEEP, i
    return PUBLISH, -1


@st.composite
def cases(draw: st.DrawFn) -> tuple[Policy, RowSignals]:
    rules = draw(st.lists(st.tuples(st.sampled_from(["remove", "review", "keep"]), _exprs), max_size=5))
    pol = Policy(
        "t",
        "",
        tuple(Rule(f"r{i}", a, e, format_expr(e), None) for i, (a, e) in enumerate(rules)),
        None,
        "preset:t",
        "0" * 64,
    )
    n = draw(st.integers(0, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))  # arrays from a seed: drawing lists is slow
    flags = {k: rng.random(n) < 0.5 for k in FLAG_KEYS}
    values = {k: rng.choice(np.array(VALUES), n) for k in VALUE_KEYS}
    rejected = rng.random(n) < 0.3 if draw(st.booleans()) else None
    return pol, RowSignals(n, flags, values, rejected)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_matches_reference(case: tuple[Policy, RowSignals]) -> None:
    pol, sig = case
    d = evaluate(pol, sig)
    for row in range(sig.n):
        flags = {k: bool(v[row]) for k, v in sig.flags.items()}
        values = {k: float(v[row]) for k, v in sig.values.items()}
        rejected = bool(sig.rejected[row]) if sig.rejected is not None else False
        assert (int(d.action[row]), int(d.rule[row])) == ref_decide(pol, flags, values, rejected)
