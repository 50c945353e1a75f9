"""The flood guard (``stages/flood.py``): what it counts, when it trips, and its baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from expunge.errors import ExpungeError
from expunge.stages import flood
from expunge.stages.decide import Decided

WHERE = Path("/data/ds")


def _check(tally: flood.Tally, previous: dict[str, Any] | None = None, **kw: Any) -> None:
    args: dict[str, Any] = {
        "share": 0.01,
        "multiple": 10.0,
        "min_rows": 0,
        "rule_shares": {},
        "accept": (),
        "where": WHERE,
    }
    args.update(kw)
    flood.check(tally, previous or {}, **args)


def _tally(
    rows_in: int, banks: dict[str, int] | None = None, rules: dict[str, int] | None = None
) -> flood.Tally:
    return flood.Tally(rows_in, dict(banks or {}), dict(rules or {}))


def test_tally_counts_rows_per_bank_and_rule() -> None:
    decided = Decided(
        rows_in=100,
        reasons={
            1: ["url_md5:partner@v2"],
            2: ["url_md5:partner@v2", "url_sha1:c3p@v1"],
            3: ["url_md5:partner@v2", "review:confirmed"],
            4: ["review:confirmed"],
            5: ["rule:unsafe"],
            6: ["cover:removed"],
            7: ["url_md5:odd@name@v3"],  # a bank name with "@v" in it
        },
        quarantined={8: "missing:unsafe", 9: "null_url", 10: "review:pending"},
        review={10: (["near"], "{}")},
    )
    tally = flood.Tally()
    tally.add(decided)
    tally.add(decided)
    assert tally.rows_in == 200
    assert tally.banks == {"partner": 6, "c3p": 2, "odd@name": 2}
    assert tally.rules == {"unsafe": 4, "near": 2}


def test_share_trips_above_the_limit_only() -> None:
    _check(_tally(1000, {"a": 10}))  # exactly 1 %: not over
    with pytest.raises(ExpungeError) as exc:
        _check(_tally(1000, {"a": 11}))
    line = exc.value.one_line()
    assert "bank 'a'" in line and "11 of 1000" in line and "--accept-flood a" in line
    assert "\n" not in line


def test_min_rows_never_trips() -> None:
    _check(_tally(100, {"a": 50}), min_rows=50)
    with pytest.raises(ExpungeError):
        _check(_tally(100, {"a": 51}), min_rows=50)


def test_accept_lets_one_name_through_not_others() -> None:
    tally = _tally(100, {"a": 50, "b": 50})
    with pytest.raises(ExpungeError, match="'b'"):
        _check(tally, accept=("a",))
    _check(tally, accept=("a", "b"))


def test_rule_uses_its_own_max_share_else_the_runs() -> None:
    tally = _tally(1000, rules={"wide": 40, "narrow": 40})
    with pytest.raises(ExpungeError, match="rule 'narrow'"):
        _check(tally, share=0.05, rule_shares={"wide": None, "narrow": 0.02})
    _check(tally, share=0.05, rule_shares={"wide": None, "narrow": 0.05})
    with pytest.raises(ExpungeError, match="rule 'wide'"):  # its own limit, looser or not
        _check(tally, share=0.5, rule_shares={"wide": 0.01, "narrow": None})


def test_multiple_of_the_previous_count() -> None:
    previous = {"rows_in": 1000, "banks": {"a": 2}, "rules": {"r": 3}}
    _check(_tally(1000, {"a": 20}), previous, share=1.0)  # 10x: not over
    with pytest.raises(ExpungeError) as exc:
        _check(_tally(1000, {"a": 21}), previous, share=1.0)
    assert "bank 'a'" in exc.value.one_line() and "the 2 of the previous clean" in exc.value.one_line()
    with pytest.raises(ExpungeError, match="rule 'r'"):
        _check(_tally(1000, rules={"r": 31}), previous, share=1.0)
    _check(_tally(1000, {"new": 500}), previous, share=1.0)  # no baseline: share only
    # A previous count of 0 is a baseline too (of 1 row): 11 rows is over 10x.
    with pytest.raises(ExpungeError):
        _check(_tally(1000, {"z": 11}), {"banks": {"z": 0}}, share=1.0)
    _check(_tally(1000, {"a": 21}), previous, share=1.0, accept=("a",))
    _check(_tally(1000, {"a": 21}), previous, share=1.0, min_rows=21)


def test_multiple_is_of_the_previous_rate_when_the_dataset_grew() -> None:
    """Issue 10: 'a multiple of that bank's previous rate'. 2 in 100 rows, then 200 in 10,000: 2 % both."""
    _check(_tally(10_000, {"a": 200}), {"rows_in": 100, "banks": {"a": 2}}, share=1.0)


def test_multiple_is_of_the_previous_rate_when_the_dataset_shrank() -> None:
    """10 in 10,000 rows (0.1 %), then 10 in 500 (2 %): 20x the rate, over a 10x limit."""
    with pytest.raises(ExpungeError):
        _check(_tally(500, {"a": 10}), {"rows_in": 10_000, "banks": {"a": 10}}, share=1.0)


def test_baseline_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "flood.json"
    assert flood.load(path) == {}
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    flood.save(path, _tally(7, {"a": 1}, {"r": 2}), tmp)
    assert flood.load(path) == {"rows_in": 7, "banks": {"a": 1}, "rules": {"r": 2}, "hash_rows": 0}


def test_empty_dataset_does_not_divide_by_zero() -> None:
    _check(_tally(0))
    _check(_tally(0), {"rows_in": 0, "banks": {}, "rules": {}})


def test_a_flood_split_over_several_banks_is_still_a_flood() -> None:
    """Red-team finding: two banks each under the share, together over it."""
    with pytest.raises(ExpungeError, match="hash-lists"):
        _check(flood.Tally(1000, {"a": 8, "b": 8}, {}, hash_rows=16), share=0.01)
    _check(flood.Tally(1000, {"a": 8, "b": 8}, {}, hash_rows=16), share=0.01, accept=("hash-lists",))
