"""Verdicts from a hotline: read fail-closed, errors that name the line and never quote it, and an
import that is all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from expunge.errors import ExpungeError
from expunge.review.export import export
from expunge.review.queue import ReviewQueue
from expunge.review.verdicts import import_verdicts, read_verdicts
from tests.review import LATER, NOW, cands, make_queue

PAIRS = [("a.parquet", 1), ("a.parquet", 3), ("b.parquet", 7), ("b.parquet", 8)]
MARK = "SYNTHETICNOTE"  # planted in bad lines: must never reach an error message
A, B = "0" * 24, "f" * 24


def _write(tmp_path: Path, text: str | bytes, name: str = "v.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _queue(tmp_path: Path) -> ReviewQueue:
    q = make_queue(tmp_path / "store")
    q.enqueue(cands(PAIRS), NOW)
    return q


def test_read_tolerates_bom_crlf_case_and_column_order(tmp_path: Path) -> None:
    text = f"\ufeffNote,Verdict,REVIEW_ID,Reviewer\r\nfine,CONFIRMED,{A},Hotline X\r\n, not ,{B.upper()},\r\n"
    assert read_verdicts(_write(tmp_path, text)) == [
        (A, "confirmed", "Hotline X", "fine"),
        (B, "not", None, None),
    ]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_or_tab_separated_files_are_read(tmp_path: Path, sep: str) -> None:
    text = sep.join(["review_id", "verdict", "note"]) + "\n" + sep.join([A, "not", "a, b"]) + "\n"
    assert read_verdicts(_write(tmp_path, text)) == [(A, "not", None, "a, b")]


def test_blank_verdicts_and_lines_are_skipped(tmp_path: Path) -> None:
    text = f"review_id,verdict,reviewer,note\n{A},,,\n\n,,,\n{B},unsure,,\n"
    assert read_verdicts(_write(tmp_path, text)) == [(B, "unsure", None, None)]


def test_short_lines_are_padded_and_extra_columns_ignored(tmp_path: Path) -> None:
    text = f"review_id,verdict,reviewer,note,extra\n{A},not\n"
    assert read_verdicts(_write(tmp_path, text)) == [(A, "not", None, None)]


def test_same_verdict_twice_is_one(tmp_path: Path) -> None:
    text = f"review_id,verdict\n{A},not\n{A},NOT\n"
    assert read_verdicts(_write(tmp_path, text)) == [(A, "not", None, None)]


BAD = [
    # (file text, line named, what the message says)
    (f"id,verdict\n{A},not\n", 1, "header"),
    (f"review_id,verdict,verdict\n{A},not,not\n", 1, "header"),
    (f"review_id,verdict\n{A},not\n{B},yes\n", 3, "verdict must be"),
    (f"review_id,verdict\n{A},confirmed?\n", 2, "verdict must be"),
    (f"review_id,verdict,note\n{A},{MARK},x\n", 2, "verdict must be"),
    (f"review_id,verdict,note\n{A[:-1]},not,{MARK}\n", 2, "review_id"),
    (f"review_id,verdict,note\n{MARK},not,x\n", 2, "review_id"),
    (f"review_id,verdict,note\n,not,{MARK}\n", 2, "review_id"),
    (f"review_id,verdict\n{A},not,{MARK}\n", 2, "more fields"),
    (f'review_id,verdict,note\n{A},not,"{MARK}\n', 2, "malformed"),
    (f'review_id,verdict,note\n{A},not,"a"{MARK}"\n', 2, "malformed"),
    (f"review_id,verdict,note\n{A},not,{MARK}\x00\n", 2, "NUL"),
    (f"review_id,verdict\n{A},not\n{B},not\n{A},confirmed\n", 4, "line 2"),
    (f"review_id,verdict,reviewer\n{A},not,{MARK}\x07\n", 2, "reviewer"),
    (f"review_id,verdict,reviewer\n{A},not,{'x' * 201}\n", 2, "reviewer"),
    (f'review_id,verdict,note\n{A},not,"multi\nline {MARK}"\n{B},{MARK}\n', 4, "verdict must be"),
]


@pytest.mark.parametrize(("text", "line", "says"), BAD)
def test_bad_lines_name_the_line_and_never_quote_it(tmp_path: Path, text: str, line: int, says: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ExpungeError) as err:
        read_verdicts(path)
    assert err.value.where == f"line {line}" and err.value.path == str(path)
    msg = str(err.value)
    assert says in msg
    for secret in (MARK, "yes", "confirmed?", A, B, "x" * 20):
        assert secret not in msg


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, b"review_id,verdict\n" + A.encode() + b",not\n" + B.encode() + b",n\xffot\n")
    with pytest.raises(ExpungeError) as err:
        read_verdicts(path)
    assert err.value.where == "line 3" and "UTF-8" in err.value.message


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ExpungeError, match="empty"):
        read_verdicts(_write(tmp_path, text))


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match="cannot read"):
        read_verdicts(tmp_path / "nope.csv")


def test_export_fill_import_then_rows_by_verdict(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    out = tmp_path / "pkg"
    export(q, out, NOW, tmp=tmp_path / "store" / "tmp")
    lines = (out / "verdicts-template.csv").read_text("utf-8").splitlines()
    ids = [q.review_id(*p) for p in PAIRS]
    filled = [lines[0], f"{ids[0]},confirmed,Hotline X,", f"{ids[1]},not,,", f"{ids[2]},unsure,,", lines[4]]
    res = import_verdicts(q, _write(tmp_path, "\r\n".join(filled) + "\r\n"), LATER, by="maintainer-relay")
    assert res.decided == {"confirmed": 1, "not": 1, "unsure": 1}
    assert (res.unchanged, res.changed, res.skipped) == (0, 0, 1)
    assert {k: v.tolist() for k, v in q.rows_by_verdict("a.parquet").items()} == {
        "confirmed": [1],
        "not": [3],
        "unsure": [],
        "pending": [],
    }
    assert {k: v.tolist() for k, v in q.rows_by_verdict("b.parquet").items()} == {
        "confirmed": [],
        "not": [],
        "unsure": [7],
        "pending": [8],
    }
    assert {k: v.tolist() for k, v in q.confirmed().items()} == {"a.parquet": [1]}
    assert q.counts() == {"queued": 0, "exported": 1, "confirmed": 1, "not": 1, "unsure": 1}
    t = q.table().to_pydict()
    assert t["decided_by"] == ["Hotline X", "maintainer-relay", "maintainer-relay", None]
    assert t["decided_at"] == [LATER, LATER, LATER, None]
    assert t["state"] == ["decided", "decided", "decided", "exported"]
    # a later clean raises the same rows: none of the decided ones goes back to the queue
    assert q.enqueue(cands(PAIRS), LATER) == 0
    assert q.counts() == {"queued": 0, "exported": 1, "confirmed": 1, "not": 1, "unsure": 1}


def test_reviewer_defaults_to_unknown(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    import_verdicts(q, _write(tmp_path, f"review_id,verdict\n{q.review_id(*PAIRS[0])},not\n"), LATER)
    assert q.table().column("decided_by").to_pylist()[0] == "unknown"


@pytest.mark.parametrize("by", ["", "  ", "a\nb", "x" * 201])
def test_bad_by_is_refused(tmp_path: Path, by: str) -> None:
    q = _queue(tmp_path)
    with pytest.raises(ExpungeError):
        import_verdicts(
            q, _write(tmp_path, f"review_id,verdict\n{q.review_id(*PAIRS[0])},not\n"), LATER, by=by
        )


def test_unknown_id_names_the_line_and_records_nothing(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    before = q.path.read_bytes()
    other = make_queue(tmp_path / "other", key=bytes(32)).review_id(*PAIRS[1])  # same row, another store
    text = f"review_id,verdict\n{q.review_id(*PAIRS[0])},confirmed\n{other},confirmed\n"
    path = _write(tmp_path, text)
    with pytest.raises(ExpungeError) as err:
        import_verdicts(q, path, LATER)
    assert err.value.where == "line 3" and other not in str(err.value)
    assert q.path.read_bytes() == before  # the valid line 2 was not recorded either


def test_changed_verdict_wins_and_same_verdict_is_unchanged(tmp_path: Path) -> None:
    q = _queue(tmp_path)
    rid = q.review_id(*PAIRS[2])
    import_verdicts(q, _write(tmp_path, f"review_id,verdict\n{rid},not\n", "1.csv"), NOW, by="h")
    same = import_verdicts(q, _write(tmp_path, f"review_id,verdict\n{rid},Not\n", "2.csv"), LATER, by="h2")
    assert (same.decided, same.unchanged, same.changed) == ({"confirmed": 0, "not": 0, "unsure": 0}, 1, 0)
    assert q.table().to_pydict()["decided_at"][2] == NOW  # unchanged: the first decision's record stays
    fixed = import_verdicts(
        q, _write(tmp_path, f"review_id,verdict\n{rid},confirmed\n", "3.csv"), LATER, by="h2"
    )
    assert (fixed.decided["confirmed"], fixed.unchanged, fixed.changed) == (1, 0, 1)
    t = q.table().to_pydict()
    assert (t["verdict"][2], t["decided_by"][2], t["decided_at"][2]) == ("confirmed", "h2", LATER)
    assert q.confirmed()["b.parquet"].tolist() == [7]


def test_verdict_for_a_queued_row_is_accepted(tmp_path: Path) -> None:
    """A package whose round was not recorded (see export) still imports: ids are stable."""
    q = _queue(tmp_path)
    res = import_verdicts(q, _write(tmp_path, f"review_id,verdict\n{q.review_id(*PAIRS[3])},not\n"), LATER)
    assert res.decided["not"] == 1 and q.rows_by_verdict("b.parquet")["not"].tolist() == [8]
