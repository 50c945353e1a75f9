"""The package a hotline receives: exactly the files named, URLs only on request and only in a 0600
file, rounds that count every export, and no partial package when something fails."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest

from expunge.errors import ExpungeError
from expunge.review.export import export
from expunge.review.queue import ReviewQueue
from tests.review import LATER, NOW, cands, make_queue

PAIRS = [("a.parquet", 1), ("a.parquet", 3), ("b.parquet", 7)]
URLS = {
    ("a.parquet", 1): b"https://example.org/img/1.jpg",
    ("a.parquet", 3): None,
    ("b.parquet", 7): b"https://example.org/img/7.jpg?x=1,2",
}
BASE = b"example.org"


def _urls(shard: str, rows: list[int]) -> list[bytes | None]:
    return [URLS[(shard, r)] for r in rows]


def _queue(tmp_path: Path) -> ReviewQueue:
    q = make_queue(tmp_path / "store")
    q.enqueue(cands(PAIRS, rules=["nb", "punsafe-hi"], signals='{"cos":0.93,"punsafe":0.97}'), NOW)
    return q


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text("utf-8"), newline="")))


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_package_without_urls(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    out = tmp_path / "pkg"
    res = export(q, out, LATER, urls=_urls, tmp=tmp_path / "store" / "tmp")
    assert (res.out, res.candidates, res.round, res.urls_file) == (out, 3, 1, None)
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "candidates.csv", "verdicts-template.csv"]
    rows = _csv(out / "candidates.csv")
    assert rows[0] == ["review_id", "shard", "row", "rules", "signals"]
    assert rows[1:] == [
        [q.review_id(s, r), s, str(r), "nb;punsafe-hi", '{"cos":0.93,"punsafe":0.97}'] for s, r in PAIRS
    ]
    assert _csv(out / "verdicts-template.csv") == [["review_id", "verdict", "reviewer", "note"]] + [
        [q.review_id(s, r), "", "", ""] for s, r in PAIRS
    ]
    readme = (out / "README.txt").read_text()
    assert all(v in readme for v in ("confirmed", "not", "unsure", "expunge review import"))
    assert "Round 1" in readme and "3 candidate" in readme
    assert BASE not in _all_bytes(out)  # the callback was given, but URLs were not asked for
    assert BASE not in q.path.read_bytes()
    assert q.counts() == {"queued": 0, "exported": 3, "confirmed": 0, "not": 0, "unsure": 0}
    t = q.table()
    assert set(t.column("exported_at").to_pylist()) == {LATER} and set(t.column("round").to_pylist()) == {1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".expunge-tmp")]


def test_urls_file_is_0600_from_birth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = _queue(tmp_path)
    out = tmp_path / "pkg"
    modes: list[int] = []
    real_open = os.open

    def watching_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        fd = real_open(path, flags, mode)
        if str(path).endswith("urls.csv"):
            modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
            assert flags & os.O_EXCL and flags & os.O_CREAT
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    old = os.umask(0)  # a permissive umask must not widen the file
    try:
        res = export(q, out, LATER, include_urls=True, urls=_urls, tmp=tmp_path / "store" / "tmp")
    finally:
        os.umask(old)
    assert res.urls_file == out / "urls.csv"
    assert modes == [0o600]
    assert stat.S_IMODE(os.stat(out / "urls.csv").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert _csv(out / "urls.csv") == [
        ["review_id", "url"],
        [q.review_id("a.parquet", 1), "https://example.org/img/1.jpg"],
        [q.review_id("a.parquet", 3), ""],
        [q.review_id("b.parquet", 7), "https://example.org/img/7.jpg?x=1,2"],
    ]
    others = b"".join(
        (out / n).read_bytes() for n in ("candidates.csv", "verdicts-template.csv", "README.txt")
    )
    assert BASE not in others
    assert sorted(p.name for p in out.iterdir()) == [
        "README.txt",
        "candidates.csv",
        "urls.csv",
        "verdicts-template.csv",
    ]


def test_url_bytes_pass_through_unchanged(tmp_path: Path) -> None:
    q = make_queue(tmp_path / "store")
    q.enqueue(cands([("a", 0)]), NOW)
    raw = b"https://example.org/img/\xff\xfe.jpg"
    export(q, tmp_path / "pkg", LATER, include_urls=True, urls=lambda s, r: [raw], tmp=tmp_path / "t")
    assert raw in (tmp_path / "pkg" / "urls.csv").read_bytes()


def test_rounds_increment_and_again(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    tmp = tmp_path / "store" / "tmp"
    assert export(q, tmp_path / "p1", NOW, tmp=tmp).round == 1
    empty = export(q, tmp_path / "p2", NOW, tmp=tmp)
    assert (empty.candidates, empty.round) == (0, 2)
    assert _csv(tmp_path / "p2" / "candidates.csv") == [["review_id", "shard", "row", "rules", "signals"]]
    assert _csv(tmp_path / "p2" / "verdicts-template.csv") == [["review_id", "verdict", "reviewer", "note"]]
    assert "0 candidate" in (tmp_path / "p2" / "README.txt").read_text()
    q.enqueue(cands([("c.parquet", 0), ("c.parquet", 1), ("c.parquet", 2)]), LATER)
    ids = {p: q.review_id(*p) for p in [*PAIRS, ("c.parquet", 0)]}
    q.apply_verdicts(
        [
            (ids["a.parquet", 1], "confirmed", "h"),
            (ids["a.parquet", 3], "not", "h"),
            (ids["b.parquet", 7], "unsure", "h"),
            (ids["c.parquet", 0], "unsure", "h"),
        ],
        LATER,
    )
    plain = export(q, tmp_path / "p3", LATER, tmp=tmp)
    assert (plain.candidates, plain.round) == (2, 3)  # c/1 and c/2; c/0 was decided while queued
    again = export(q, tmp_path / "p4", LATER, again=True, tmp=tmp)
    assert again.round == 4
    sent = {(r[1], int(r[2])) for r in _csv(tmp_path / "p4" / "candidates.csv")[1:]}
    assert sent == {("b.parquet", 7), ("c.parquet", 0), ("c.parquet", 1), ("c.parquet", 2)}
    assert q.counts() == {"queued": 0, "exported": 2, "confirmed": 1, "not": 1, "unsure": 2}
    assert q.rows_by_verdict("b.parquet")["unsure"].tolist() == [7]  # re-sent, still withheld as unsure


def test_non_empty_out_is_refused(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    tmp = tmp_path / "store" / "tmp"
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "old.csv").write_text("x")
    with pytest.raises(ExpungeError, match="not empty"):
        export(q, out, LATER, tmp=tmp)
    assert [p.name for p in out.iterdir()] == ["old.csv"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExpungeError, match="not a plain folder"):
        export(q, tmp_path / "afile", LATER, tmp=tmp)
    (tmp_path / "link").symlink_to(tmp_path / "emptydir", target_is_directory=True)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ExpungeError, match="not a plain folder"):
        export(q, tmp_path / "link", LATER, tmp=tmp)
    assert q.counts()["queued"] == 3 and q.last_round() == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(q, empty, LATER, tmp=tmp).candidates == 3  # an empty folder is fine


def _assert_nothing_left(tmp_path: Path, q: ReviewQueue, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".expunge-tmp")]
    assert q.counts()["queued"] == 3 and q.last_round() == 0


def test_failing_urls_callback_leaves_nothing(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    out = tmp_path / "pkg"

    def broken(shard: str, rows: list[int]) -> list[bytes | None]:
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        export(q, out, LATER, include_urls=True, urls=broken, tmp=tmp_path / "t")
    _assert_nothing_left(tmp_path, q, out)


@pytest.mark.parametrize(
    "bad",
    [
        lambda shard, rows: [b"https://example.org/img/1.jpg"] * (len(rows) + 1),
        lambda shard, rows: [],
        lambda shard, rows: [123] * len(rows),
    ],
)
def test_wrong_urls_from_callback_are_refused(tmp_path: Path, bad: object) -> None:
    q = _queue(tmp_path)
    out = tmp_path / "pkg"
    with pytest.raises(ExpungeError) as err:
        export(q, out, LATER, include_urls=True, urls=bad, tmp=tmp_path / "t")  # type: ignore[arg-type]
    assert "example.org" not in str(err.value)
    _assert_nothing_left(tmp_path, q, out)


def test_failed_queue_write_leaves_rows_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented order: the package first, then the round; rows stay queued if the second fails."""
    q = _queue(tmp_path)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ReviewQueue, "mark_exported", boom)
    with pytest.raises(OSError):
        export(q, tmp_path / "pkg", LATER, tmp=tmp_path / "t")
    assert (tmp_path / "pkg" / "candidates.csv").is_file()
    assert q.counts()["queued"] == 3


def test_urls_need_a_callback(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        export(_queue(tmp_path), tmp_path / "pkg", LATER, include_urls=True, tmp=tmp_path / "t")
    assert not (tmp_path / "pkg").exists()


def test_export_of_an_empty_queue(tmp_path: Path) -> None:
    q = make_queue(tmp_path / "store")
    res = export(q, tmp_path / "pkg", NOW, include_urls=True, urls=_urls, tmp=tmp_path / "store" / "tmp")
    assert (res.candidates, res.round) == (0, 1)
    assert _csv(tmp_path / "pkg" / "urls.csv") == [["review_id", "url"]]
    assert q.last_round() == 1 and q.table().num_rows == 0


def test_a_shard_name_that_looks_like_a_formula_is_inert(tmp_path: Path) -> None:
    """Red-team finding: a shard named ``=HYPERLINK(...)`` would run in the hotline's spreadsheet."""
    from expunge.review.export import _inert

    assert _inert("=cmd|' /C calc'!A0.parquet") == "'=cmd|' /C calc'!A0.parquet"
    assert _inert("@sum.parquet") == "'@sum.parquet"
    assert _inert("data/part-0.parquet") == "data/part-0.parquet"
