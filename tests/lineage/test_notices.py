"""Notices: one Markdown file per affected repo, an index and the pointers page, written all at once;
counts and ids only, every id inert."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expunge.errors import ExpungeError
from expunge.lineage.marks import Mark
from expunge.lineage.notices import INDEX, POINTERS, code, file_name, notice, write_notices
from expunge.lineage.report import Affected, Step, build_report
from tests.lineage.test_report import ROOT_A, ROOT_S, _ref, hand_graph, hand_marks


def test_one_notice_per_affected_repo(tmp_path: Path) -> None:
    report = build_report(hand_graph(), hand_marks())
    out = tmp_path / "notices"
    written = write_notices(report, out)
    assert set(written) == {a.id for a in report.affected}
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [INDEX, POINTERS, "a__base.md", "a__ft.md", "b__lora.md", "c__merge.md", "d__q.md", "f__model.md"]
    )
    dq = (out / "d__q.md").read_text()
    assert dq.startswith("# Notice to the maintainers of `d/q`")
    assert "2,236 of 1,000,000 rows of `laion/laion2b-en` were removed." in dq
    assert "| `pdq` | 236 |" in dq and "| `url_md5` | 2,000 |" in dq
    assert "1. `laion/laion2b-en` → `a/base`: `trained_on`, declared in a card" in dq
    assert "4. `c/merge` → `d/q`: `quantized`, declared in a card" in dq
    assert f"- release Merkle root: `{ROOT_A}` (release sequence 2)" in dq
    assert "- successor: `laion/relaion2b-en`" in dq
    assert "`expunge verify RELEASE`" in dq and "Retrain, or fine-tune again" in dq
    lora = (out / "b__lora.md").read_text()
    assert "**inferred**" in lora and "If an inferred step above is wrong" in lora
    f_model = (out / "f__model.md").read_text()
    assert "descends from `e/subset`" in f_model and "17 of 1,000,000 rows" in f_model and ROOT_S in f_model
    index = (out / INDEX).read_text()
    for a in report.affected:
        assert f"| `{a.id}` | {a.kind} | `{a.ancestor}` |" in index
    pointers = (out / POINTERS).read_text()
    assert "- model `g/pointer` → `w/old`: withdrawn; successor `w/new`" in pointers
    for path in out.iterdir():
        text = path.read_text()
        assert "README.md" not in text and "http" not in text  # no card paths, no links out


def test_a_dataset_notice_says_expunge_apply(tmp_path: Path) -> None:
    mark = Mark("laion/laion2b-en", "removed", "t", _ref(ROOT_A, 5, {"url_md5": 5}))
    step = Step("laion/laion2b-en", "x/subset", "subset", True)
    text = notice(
        Affected("x/subset", "dataset", "laion/laion2b-en", mark, ("laion/laion2b-en", "x/subset"), (step,))
    )
    assert "`expunge apply RELEASE YOUR_DATASET --out CLEANED`" in text and "Retrain" not in text


def test_a_non_empty_out_is_refused_and_nothing_half_written(tmp_path: Path) -> None:
    report = build_report(hand_graph(), hand_marks())
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExpungeError, match="not empty"):
        write_notices(report, out)
    assert os.listdir(out) == ["keep.txt"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ExpungeError):
        write_notices(report, afile)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_notices(report, empty)
    assert (empty / INDEX).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


@pytest.mark.parametrize(
    "text",
    ["a`b", "x/[click](javascript:alert)", "x/<img src=q>", "line\nbreak", "x/# heading", "``"],
)
def test_ids_are_inert_code_spans(text: str) -> None:
    span = code(text)
    assert span.startswith("`") and span.endswith("`") and span.count("`") == 2
    assert "\n" not in span


def test_file_names_are_safe_and_unique() -> None:
    taken: set[str] = set()
    assert file_name("Owner/Name", taken, "model") == "owner__name.md"
    assert file_name("owner/name", taken, "dataset") == "owner__name--dataset.md"
    assert file_name("owner/name", taken, "dataset") == "owner__name--dataset-2.md"
    for bad in ("../../etc/passwd", ".hidden/x", "a/b\x00c", "index/md"):
        name = file_name(bad, taken, "model")
        assert "/" not in name and not name.startswith(".") and "\x00" not in name
    assert file_name("INDEX", set(), "model") != INDEX
