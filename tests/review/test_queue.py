"""The review queue's state: stable keyed ids, idempotent enqueue, decided rows never re-queued,
byte-identical files for identical histories, and a damaged file refused rather than guessed at."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.review.queue import SCHEMA, Candidates, ReviewQueue, canonical_signals, check_time
from expunge.store import Store
from tests.review import DS, KEY, LATER, NOW, cands, make_queue

PAIRS = [("b.parquet", 7), ("a.parquet", 3), ("a.parquet", 1)]


def test_store_review_dir(tmp_path: Path) -> None:
    assert Store(tmp_path).review_dir("data-abc") == tmp_path / "datasets" / "data-abc" / "review"


def test_review_ids_are_stable_keyed_and_distinct(tmp_path: Path) -> None:
    q = make_queue(tmp_path / "s1")
    rid = q.review_id("a.parquet", 1)
    assert len(rid) == 24 and all(c in "0123456789abcdef" for c in rid)
    assert rid == make_queue(tmp_path / "s2").review_id("a.parquet", 1)  # same key: same id anywhere
    assert rid != make_queue(tmp_path / "s3", key=bytes(32)).review_id("a.parquet", 1)
    assert rid != make_queue(tmp_path / "s4", ds="data-other").review_id("a.parquet", 1)
    ids = {q.review_id(s, r) for s in ("a.parquet", "a.parquet1", "b") for r in (0, 1, 10, 11)}
    assert len(ids) == 12
    # the id is not a plain hash of the visible parts: without the key it cannot be recomputed
    assert "a.parquet" not in rid and DS not in rid


def test_empty_queue(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    assert q.table().schema.equals(SCHEMA) and q.table().num_rows == 0
    assert q.counts() == {"queued": 0, "exported": 0, "confirmed": 0, "not": 0, "unsure": 0}
    assert {k: v.tolist() for k, v in q.rows_by_verdict("a.parquet").items()} == {
        "confirmed": [],
        "not": [],
        "unsure": [],
        "pending": [],
    }
    assert q.confirmed() == {}
    assert not q.path.exists()


def test_enqueue_is_idempotent_and_sorted(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    assert q.enqueue(cands(PAIRS), NOW) == 3
    before = q.path.read_bytes()
    assert q.enqueue(cands(PAIRS), LATER) == 0
    assert q.path.read_bytes() == before  # nothing changed, nothing written
    t = q.table()
    assert list(zip(t.column("shard").to_pylist(), t.column("row").to_pylist(), strict=True)) == sorted(PAIRS)
    assert set(t.column("state").to_pylist()) == {"queued"}
    assert set(t.column("queued_at").to_pylist()) == {NOW}
    assert t.column("review_id").to_pylist() == [q.review_id(s, r) for s, r in sorted(PAIRS)]
    assert t.column("round").type == pa.int32() and set(t.column("round").to_pylist()) == {0}
    assert q.enqueue(cands([("c.parquet", 0), ("a.parquet", 1)]), LATER) == 1
    assert q.counts()["queued"] == 4
    assert q.rows_by_verdict("a.parquet")["pending"].tolist() == [1, 3]
    assert q.rows_by_verdict("a.parquet")["pending"].dtype == np.int64


def test_enqueue_refreshes_rules_and_signals_of_undecided_rows(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    q.enqueue(cands(PAIRS, rules=["old"], signals='{"punsafe":0.5}'), NOW)
    assert q.enqueue(cands(PAIRS, rules=["new", "also"], signals='{"punsafe":0.9,"cos":0.93}'), LATER) == 0
    t = q.table()
    assert t.column("rules").to_pylist() == [["also", "new"]] * 3
    assert t.column("signals").to_pylist() == ['{"cos":0.93,"punsafe":0.9}'] * 3
    assert set(t.column("queued_at").to_pylist()) == {NOW}


def test_decided_rows_are_never_requeued(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    q.enqueue(cands([*PAIRS, ("c.parquet", 2)], rules=["r"]), NOW)
    ids = [q.review_id(s, r) for s, r in PAIRS]
    q.apply_verdicts([(ids[0], "confirmed", "x"), (ids[1], "not", "x"), (ids[2], "unsure", "x")], NOW)
    before = q.table()
    assert q.enqueue(cands(PAIRS, rules=["again"], signals='{"punsafe":1}'), LATER) == 0
    after = q.table()
    assert after.equals(before)  # decided rows untouched: no refresh, no state change
    assert q.counts() == {"queued": 1, "exported": 0, "confirmed": 1, "not": 1, "unsure": 1}


def test_rows_by_verdict_confirmed_and_counts(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    pairs = [("a", 5), ("a", 2), ("a", 9), ("a", 4), ("b", 1), ("b", 0)]
    q.enqueue(cands(pairs), NOW)
    rid = {p: q.review_id(*p) for p in pairs}
    q.apply_verdicts(
        [
            (rid["a", 9], "confirmed", "h"),
            (rid["a", 2], "confirmed", "h"),
            (rid["a", 5], "not", "h"),
            (rid["b", 1], "unsure", "h"),
            (rid["b", 0], "confirmed", "h"),
        ],
        NOW,
    )
    a = q.rows_by_verdict("a")
    assert {k: v.tolist() for k, v in a.items()} == {
        "confirmed": [2, 9],
        "not": [5],
        "unsure": [],
        "pending": [4],
    }
    assert {k: v.tolist() for k, v in q.confirmed().items()} == {"a": [2, 9], "b": [0]}
    assert q.rows_by_verdict("zzz")["pending"].tolist() == []
    with pytest.raises(ValueError):  # shared with the cache: a caller cannot change what others see
        q.rows_by_verdict("a")["confirmed"][0] = 3
    assert q.counts() == {"queued": 1, "exported": 0, "confirmed": 3, "not": 1, "unsure": 1}


def test_identical_histories_give_identical_bytes(tmp_path: Path) -> None:
    files = []
    for n, order in enumerate((PAIRS, list(reversed(PAIRS)))):
        q = make_queue(tmp_path / f"s{n}")
        q.enqueue(cands(order), NOW)
        q.enqueue(cands([("z", 1)], signals='{"b":1,"a":0.5}' if n else '{"a":0.5,"b":1}'), LATER)
        q.mark_exported([q.review_id("z", 1)], LATER, 1)
        q.apply_verdicts([(q.review_id("a.parquet", 3), "not", "hotline")], LATER)
        files.append(q.path.read_bytes())
    assert files[0] == files[1]


def test_duplicate_candidates_are_merged(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    c = Candidates(
        shard=["a", "a"], row=np.array([1, 1]), rules=[["r2"], ["r1", "r2"]], signals=['{"x":1}', '{"y":2}']
    )
    assert q.enqueue(c, NOW) == 1
    assert q.table().column("rules").to_pylist() == [["r1", "r2"]]
    assert json.loads(q.table().column("signals")[0].as_py()) == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    "signals",
    [
        '{"punsafe":"a caption"}',
        '{"x":true}',
        '{"x":[1]}',
        '{"x":NaN}',
        '{"x":Infinity}',
        "[1]",
        "not json",
        '{"a caption with spaces":1}',
        '{"":1}',
        '{"x":{"y":1}}',
    ],
)
def test_signals_are_numbers_only(tmp_path: Path, signals: str) -> None:
    with pytest.raises(ValueError) as err:
        make_queue(tmp_path).enqueue(cands([("a", 1)], signals=signals), NOW)
    assert "caption" not in str(err.value)
    assert not make_queue(tmp_path).path.exists()


def test_signals_canonical_form() -> None:
    assert (
        canonical_signals('{ "b": 1, "a": null, "score:punsafe": 0.25 }')
        == '{"a":null,"b":1,"score:punsafe":0.25}'
    )


@pytest.mark.parametrize(
    "c",
    [
        Candidates(shard=["a"], row=np.array([1, 2]), rules=[["r"]], signals=["{}"]),
        Candidates(shard=["a"], row=np.array([-1]), rules=[["r"]], signals=["{}"]),
        Candidates(shard=["a"], row=np.array([1.5]), rules=[["r"]], signals=["{}"]),
        Candidates(shard=[""], row=np.array([1]), rules=[["r"]], signals=["{}"]),
        Candidates(shard=["a"], row=np.array([1]), rules=[[""]], signals=["{}"]),
        Candidates(shard=["a"], row=np.array([1]), rules=[["a;b"]], signals=["{}"]),
        Candidates(shard=["a"], row=np.array([1]), rules=[["a\nb"]], signals=["{}"]),
    ],
)
def test_bad_candidates_are_refused(tmp_path: Path, c: Candidates) -> None:
    with pytest.raises(ValueError):
        make_queue(tmp_path).enqueue(c, NOW)


@pytest.mark.parametrize("now", ["2025-01-02T03:04:05", "2025-01-02T03:04:05+02:00", "yesterday", ""])
def test_timestamps_are_utc_iso(now: str) -> None:
    with pytest.raises(ValueError):
        check_time(now)
    assert check_time("2025-01-02T03:04:05+00:00")


def test_empty_candidates_write_nothing(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    assert q.enqueue(cands([]), NOW) == 0
    assert not q.path.exists()


def test_another_queue_object_sees_writes(tmp_path: Path) -> None:
    q1, q2 = make_queue(tmp_path), make_queue(tmp_path)
    assert q2.counts()["queued"] == 0
    q1.enqueue(cands(PAIRS), NOW)
    assert q2.counts()["queued"] == 3
    q1.apply_verdicts([(q1.review_id("b.parquet", 7), "confirmed", "h")], NOW)
    assert q2.confirmed()["b.parquet"].tolist() == [7]


def _rewrite(q: ReviewQueue, table: pa.Table) -> None:
    pq.write_table(table, q.path)


def test_damaged_or_foreign_queue_files_are_refused(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    q.enqueue(cands(PAIRS), NOW)
    good = pq.read_table(q.path)
    cases = [
        good.replace_schema_metadata({"format": "something-else", "round": "0"}),
        good.replace_schema_metadata({"format": "expunge-review-queue-1", "round": "x"}),
        good.drop_columns(["signals"]).replace_schema_metadata(good.schema.metadata),
        good.set_column(5, "state", pa.array(["queued", "maybe", "queued"])),
        good.set_column(
            6, "verdict", pa.array([None, "confirmed", None], pa.string())
        ),  # verdict w/o decided
        good.set_column(0, "review_id", pa.array([None, "a", "b"], pa.string())),
    ]
    for bad in cases:
        _rewrite(q, bad)
        with pytest.raises(ExpungeError) as err:
            make_queue(tmp_path).counts()
        assert str(q.path) in str(err.value)
    q.path.write_bytes(b"not parquet at all")
    with pytest.raises(ExpungeError, match="cannot be read"):
        make_queue(tmp_path).table()


def test_failed_write_leaves_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = make_queue(tmp_path)
    q.enqueue(cands(PAIRS), NOW)
    before = q.path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        q.enqueue(cands([("new", 1)]), LATER)
    assert q.path.read_bytes() == before
    assert list((tmp_path / "tmp").iterdir()) == []
    assert q.counts()["queued"] == 3


def test_mark_exported_rounds_only_increase(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    q.enqueue(cands(PAIRS), NOW)
    q.mark_exported([q.review_id("a.parquet", 1)], NOW, 1)
    assert q.last_round() == 1
    with pytest.raises(ValueError):
        q.mark_exported([], NOW, 1)
    assert q.counts() == {"queued": 2, "exported": 1, "confirmed": 0, "not": 0, "unsure": 0}
    assert q.rows_by_verdict("a.parquet")["pending"].tolist() == [1, 3]


def test_apply_verdicts_unknown_id_changes_nothing(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    q.enqueue(cands(PAIRS), NOW)
    before = q.path.read_bytes()
    with pytest.raises(ValueError):
        q.apply_verdicts([(q.review_id("a.parquet", 1), "confirmed", "h"), ("0" * 24, "not", "h")], NOW)
    assert q.path.read_bytes() == before
    assert KEY  # the helper key is the one every id above was built with
