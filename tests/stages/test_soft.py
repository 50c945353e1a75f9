"""The soft-signal stage (``stages/soft.py``): sparse score findings, keyword hits, refusals, reruns."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.pipeline.dataset import open_dataset
from expunge.signals.keyword import read_terms
from expunge.stages.soft import MISSING, SoftTask, soft_shard
from expunge.store import Store

NAN = math.nan
SCORES: list[float | None] = [0.1, 0.5, 0.7, NAN, None, 0.4999, 0.5, 1.0, 0.0, None, 0.95]


def _task(tmp_path: Path, table: pa.Table, **kw: object) -> SoftTask:
    root = tmp_path / "ds"
    root.mkdir(exist_ok=True)
    pq.write_table(table, root / "part-0.parquet", row_group_size=3)  # several batches: row offsets
    store = Store(tmp_path / "store").ensure()
    ds = open_dataset(store, [str(root)])
    (shard,) = ds.shards
    base = SoftTask(
        shard=shard,
        shard_sha256="0" * 64,
        index_dir=str(tmp_path / "index"),
        out_path=str(tmp_path / "soft.parquet"),
        state_path=str(tmp_path / "soft.state.json"),
        tmp_dir=str(store.tmp),
        caption_column="caption",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _table(**cols: pa.Array) -> pa.Table:
    n = len(next(iter(cols.values())))
    return pa.table(
        {
            "url": pa.array([f"https://a.example/{i:03d}.jpg" for i in range(n)]),
            "caption": pa.array([f"a plain caption number {i:03d}" for i in range(n)]),
            **cols,
        }
    )


def _found(task: SoftTask) -> list[dict]:
    return pq.read_table(task.out_path).to_pylist()


def test_scores_are_sparse_with_missing_rows(tmp_path: Path) -> None:
    task = _task(
        tmp_path, _table(punsafe=pa.array(SCORES, pa.float64())), values=(("score.punsafe", 0.5, ""),)
    )
    res = soft_shard(task)
    rows = {r["row"]: r for r in _found(task)}
    assert set(rows) == {1, 2, 3, 4, 6, 7, 9, 10}  # >= 0.5, NaN and null; 0.4999 and below are not kept
    for i in (3, 4, 9):
        assert rows[i]["value"] == MISSING and rows[i]["score"] is None
    for i in (1, 2, 6, 7, 10):
        assert rows[i]["value"] == b"" and rows[i]["score"] == pytest.approx(SCORES[i], abs=1e-6)
    assert {r["bank"] for r in rows.values()} == {"score.punsafe"}
    assert {r["signal"] for r in rows.values()} == {"score"}
    assert res.counts == {"score.punsafe": 8} and not res.done


@pytest.mark.parametrize(
    "column",
    [
        pa.array([0, 3, 5, 9, None, 5, 2], pa.int64()),
        pa.array([0, 3, 5, 9, None, 5, 2], pa.uint8()),
        pa.array([0.0, 3.0, 5.0, 9.0, None, 5.0, 2.0], pa.float32()),
        pa.array(
            [Decimal(x) if x is not None else None for x in (0, 3, 5, 9, None, 5, 2)], pa.decimal128(5, 1)
        ),
    ],
    ids=["int64", "uint8", "float32", "decimal"],
)
def test_integer_float_and_decimal_columns(tmp_path: Path, column: pa.Array) -> None:
    task = _task(tmp_path, _table(votes=column), values=(("score.votes", 5.0, ""),))
    soft_shard(task)
    rows = {r["row"]: (r["value"], r["score"]) for r in _found(task)}
    assert rows == {2: (b"", 5.0), 3: (b"", 9.0), 4: (MISSING, None), 5: (b"", 5.0)}


def test_two_score_columns_each_at_its_own_threshold(tmp_path: Path) -> None:
    table = _table(a=pa.array([0.1, 0.9, 0.5]), b=pa.array([0.6, 0.1, None]))
    task = _task(tmp_path, table, values=(("score.a", 0.5, ""), ("score.b", 0.55, "")))
    res = soft_shard(task)
    got = {(r["bank"], r["row"]) for r in _found(task)}
    assert got == {("score.a", 1), ("score.a", 2), ("score.b", 0), ("score.b", 2)}
    assert res.counts == {"score.a": 2, "score.b": 2}


@pytest.mark.parametrize(
    "column",
    [pa.array(["0.9", "0.1", "secret words"]), pa.array([True, False, True])],
    ids=["string", "bool"],
)
def test_non_numeric_column_is_refused_naming_the_column(tmp_path: Path, column: pa.Array) -> None:
    task = _task(tmp_path, _table(rating=column), values=(("score.rating", 0.5, ""),))
    with pytest.raises(ExpungeError) as exc:
        soft_shard(task)
    line = exc.value.one_line()
    assert "'rating'" in line and "not a number" in line
    assert "secret" not in line and "0.9" not in line  # never quotes a value
    assert not Path(task.out_path).exists()


def test_missing_column_is_refused_naming_it(tmp_path: Path) -> None:
    task = _task(tmp_path, _table(punsafe=pa.array([0.1])), values=(("score.pwatermark", 0.5, ""),))
    with pytest.raises(ExpungeError, match="pwatermark"):
        soft_shard(task)


def test_all_null_column_is_missing_everywhere_or_refused(tmp_path: Path) -> None:
    """A column Arrow stores as type null (every value missing) is never silently safe."""
    task = _task(tmp_path, _table(punsafe=pa.nulls(4)), values=(("score.punsafe", 0.5, ""),))
    try:
        soft_shard(task)
    except ExpungeError as exc:
        assert "punsafe" in exc.one_line()
        return
    rows = {r["row"]: r["value"] for r in _found(task)}
    assert rows == dict.fromkeys(range(4), MISSING)


def test_fingerprint_skips_a_rerun_and_redoes_a_change(tmp_path: Path) -> None:
    task = _task(
        tmp_path, _table(punsafe=pa.array(SCORES, pa.float64())), values=(("score.punsafe", 0.5, ""),)
    )
    first = soft_shard(task)
    stamp = Path(task.out_path).stat().st_mtime_ns
    again = soft_shard(task)
    assert again.done and again.counts == first.counts
    assert Path(task.out_path).stat().st_mtime_ns == stamp
    lower = soft_shard(replace(task, values=(("score.punsafe", 0.45, ""),)))  # another threshold: redone
    assert not lower.done and lower.counts == {"score.punsafe": 9}
    changed = soft_shard(replace(task, values=(("score.punsafe", 0.45, ""),), shard_sha256="1" * 64))
    assert not changed.done
    Path(task.out_path).unlink()  # the output gone: redone even with the same fingerprint
    assert not soft_shard(replace(task, values=(("score.punsafe", 0.45, ""),), shard_sha256="1" * 64)).done


def test_keywords_store_term_ids_never_terms(tmp_path: Path) -> None:
    captions = ["a pelican at dawn", "a PELICAN!", "pelicans", "a p-e-l-i-c-a-n", "nothing here", None]
    table = pa.table({"url": pa.array([f"https://a.example/{i}" for i in range(6)]), "caption": captions})
    kw = tmp_path / "birds.txt"
    kw.write_text("pelican\n")
    terms = read_terms(kw)
    task = _task(tmp_path, table, keywords=(("birds", terms),))
    res = soft_shard(task)
    found = _found(task)
    rows = sorted(r["row"] for r in found)
    assert 0 in rows and 1 in rows and 2 not in rows and 4 not in rows and 5 not in rows
    assert {r["bank"] for r in found} == {"keyword.birds"}
    assert all(r["value"] == bytes(terms.term_ids[0]) for r in found)
    assert b"pelican" not in Path(task.out_path).read_bytes().lower()
    assert b"pelican" not in Path(task.state_path).read_bytes().lower()
    assert res.counts == {"keyword.birds": len(rows)}
    kw.write_text("heron\n")  # the list's bytes changed: redone
    assert not soft_shard(replace(task, keywords=(("birds", read_terms(kw)),))).done
    assert _found(task) == []
