"""Crafted inputs against lineage: sloppy or hostile cards, odd marks, injection into reports and
notices. Each test here is an attack that once found a defect (kept as a regression test).

The worst failure is a tainted repo left out of the report, so most attacks spell a marked dataset in
some other way and check the repo still reaches the report (as an inferred edge when the card is odd).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expunge.lineage import marks as lm
from expunge.lineage.cards import read_tree
from expunge.lineage.graph import LineageGraph
from expunge.lineage.report import LineageReport, build_report

MARKED = "laion/laion2B-en"


def _card(root: Path, kind: str, repo: str, front: str) -> Path:
    folder = root / f"{kind}s" / repo.replace("/", "__")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\n{front}\n---\n", encoding="utf-8")
    return folder


def _tree(root: Path) -> Path:
    _card(root, "dataset", MARKED, "license: cc-by-4.0")
    return root


def _marks(*datasets: str) -> lm.Marks:
    marks = lm.Marks()
    for d in datasets:
        lm.add_mark(marks, lm.Mark(d, "removed", "2025-01-01T00:00:00Z"))
    return marks


def _report(root: Path, *marked: str) -> LineageReport:
    graph = LineageGraph.from_cards(read_tree(root))
    return build_report(graph, _marks(*(marked or (MARKED.lower(),))))


def _affected(report: LineageReport) -> dict[str, tuple[bool, ...]]:
    return {a.id: tuple(s.declared for s in a.steps) for a in report.affected}


# --------------------------------------------------------------------------------------------------
# Cards naming the marked dataset in another spelling must reach the report


@pytest.mark.parametrize(
    "front",
    [
        "datasets: [laion/laion2B-en/]",  # trailing slash
        "datasets: [laion/laion2B-en.git]",  # clone URL suffix
        "datasets: [laion/laion2B-en@refs/pr/1]",  # revision with slashes
        "datasets: [laion/laion2B-en/tree/main]",  # a path without the host
        'datasets: ["laion/laion2B\\u200b-en"]',  # zero-width space
        'datasets: ["\\u202elaion/laion2B-en"]',  # right-to-left override
        'datasets: ["\\uff4c\\uff41\\uff49\\uff4f\\uff4e/laion2B-en"]',  # fullwidth letters
        'datasets: ["laion/laion2B\\u2010en"]',  # Unicode hyphen
        'datasets: ["l\\u0430ion/laion2B-en"]',  # Cyrillic a
        'datasets: ["la\\u0131on/la\\u00efon2B-en"]',  # dotless i, diaeresis
        'datasets: "laion/laion2B-en, laion/coco"',  # a comma list in a string
        'datasets: "trained on [LAION](https://huggingface.co/datasets/laion/laion2B-en)."',  # prose
        "datasets: [[laion/laion2B-en]]",  # nested list
        "datasets: [{name: laion/laion2B-en, split: train}]",  # a mapping entry
        "datasets: {laion/laion2B-en: true}",  # a mapping field
        "base_model: {id: laion/laion2B-en}",
    ],
)
def test_odd_spellings_of_a_marked_dataset_reach_the_report(tmp_path: Path, front: str) -> None:
    root = _tree(tmp_path)
    _card(root, "model", "o/model", front)
    _card(root, "model", "o/child", "base_model: o/model")
    got = _affected(_report(root))
    assert "o/model" in got and "o/child" in got


def test_ownerless_dataset_spellings_reach_the_report_as_aliases(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _card(root, "model", "o/a", "datasets: [datasets/laion2B-en]")
    _card(root, "model", "o/b", "datasets: [https://huggingface.co/datasets/laion2B-en]")
    got = _affected(_report(root))
    assert got["o/a"] == got["o/b"] == (False, True)  # alias step (inferred), then the card's edge


def test_odd_entries_are_followed_as_inferred_with_one_warning(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _card(root, "model", "o/m", "datasets: [{name: laion/laion2B-en}]")
    cards = read_tree(root)
    assert [(e.parent, e.declared) for e in cards.edges if e.child == "o/m"] == [("laion/laion2b-en", False)]
    mine = [w.message for w in cards.warnings if w.card.startswith("models/o__m")]
    assert mine == ["datasets entry 1 is not a string; 1 id(s) found in it are followed as inferred edges"]


def test_lookalike_characters_warn_and_name_the_folded_id(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _card(root, "model", "o/m", 'datasets: ["l\\u0430ion/laion2B-en"]')
    cards = read_tree(root)
    assert [e.parent for e in cards.edges] == ["laion/laion2b-en"]
    assert any("look-alike" in w.message and "laion/laion2B-en" in w.message for w in cards.warnings)
    assert all(w.message.isascii() for w in cards.warnings)  # the disguised spelling is never echoed


def test_alias_bomb_inside_an_odd_entry_is_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [laion/laion2B-en, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 25)]
    lines.append("datasets: {k: *a24}")
    root = _tree(tmp_path)
    _card(root, "model", "o/m", "\n".join(lines))
    start = time.perf_counter()
    got = _affected(_report(root))
    assert time.perf_counter() - start < 5
    assert "o/m" in got


# --------------------------------------------------------------------------------------------------
# Marks


def test_marks_file_with_another_spelling_still_reports_everything(tmp_path: Path) -> None:
    root = _tree(tmp_path / "cards")
    _card(root, "model", "o/m", f"datasets: [{MARKED}]")
    store = tmp_path / "lineage"
    lm.save(store, _marks("laion/laion2b-en"), None)
    path = lm.marks_path(store)
    data = json.loads(path.read_text())
    entries = data["marks"].pop("laion/laion2b-en")
    for e in entries:
        e["dataset"] = "LAION/laion2B-en"
    data["marks"]["LAION/laion2B-en"] = entries
    path.write_text(json.dumps(data))
    marks = lm.load(store)
    assert list(marks.history) == ["laion/laion2b-en"]
    report = build_report(LineageGraph.from_cards(read_tree(root)), marks)
    assert "o/m" in _affected(report)


def test_marks_file_key_that_is_not_an_id_is_refused(tmp_path: Path) -> None:
    from expunge.errors import ExpungeError

    store = tmp_path / "lineage"
    lm.save(store, _marks("laion/laion2b-en"), None)
    path = lm.marks_path(store)
    data = json.loads(path.read_text())
    data["marks"]["../x y"] = data["marks"].pop("laion/laion2b-en")
    path.write_text(json.dumps(data))
    with pytest.raises(ExpungeError, match="not a repo id"):
        lm.load(store)


def test_marks_built_in_code_with_another_spelling_still_report(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _card(root, "model", "o/m", f"datasets: [{MARKED}]")
    assert "o/m" in _affected(_report(root, "LAION/laion2B-en"))


def test_ownerless_mark_reaches_the_owned_dataset_and_below(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _card(root, "model", "o/m", f"datasets: [{MARKED}]")
    _card(root, "model", "o/ft", "base_model: o/m")
    got = _affected(_report(root, "laion2b-en"))
    assert got["laion/laion2b-en"] == (False,)
    assert got["o/m"] == (False, True) and got["o/ft"] == (False, True, True)


# --------------------------------------------------------------------------------------------------
# Card trees


def test_hostile_card_tree_neither_crashes_nor_hangs_the_build(tmp_path: Path) -> None:
    """Deeply nested YAML overflowed libyaml's C stack (the process died); a refs/main that is a FIFO
    or /dev/zero blocked or never ended. Run in a child process: the old failure was a segfault."""
    root = _tree(tmp_path / "cards")
    deep = _card(root, "model", "o/deep", "license: x")
    (deep / "README.md").write_text("---\ndatasets: " + "[" * 60_000 + "]" * 60_000 + "\n---\n")
    blocks = _card(root, "model", "o/blocks", "license: x")
    (blocks / "README.md").write_text("---\ndatasets:\n" + "- " * 60_000 + "x\n---\n")
    for name, make in (("fifo", os.mkfifo), ("zero", lambda p: os.symlink("/dev/zero", p))):
        cache = root / "models" / f"models--o--{name}"
        (cache / "refs").mkdir(parents=True)
        make(cache / "refs" / "main")
        _card(cache, "snapshot", "abc", f"datasets: [{MARKED}]")  # cache/snapshots/abc/README.md
    code = (
        "import sys; from expunge.lineage.cards import read_tree; c = read_tree(sys.argv[1]);"
        "print(sorted(e.child for e in c.edges)); print([w.message for w in c.warnings])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['o/fifo', 'o/zero']" in done.stdout
    assert "front matter is nested too deeply" in done.stdout


def test_dangling_refs_main_reads_every_snapshot(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    cache = root / "models" / "models--o--m"
    (cache / "refs").mkdir(parents=True)
    (cache / "refs" / "main").write_text("0123missing")
    for snap, front, when in (("aaa", f"datasets: [{MARKED}]", 1_000_000), ("bbb", "license: x", 2_000_000)):
        folder = cache / "snapshots" / snap
        folder.mkdir(parents=True)
        (folder / "README.md").write_text(f"---\n{front}\n---\n")
        os.utime(folder, (when, when))
    cards = read_tree(root)
    assert any("refs/main names no snapshot here" in w.message for w in cards.warnings)
    assert _affected(_report(root)) == {"o/m": (False,)}  # the older snapshot's claim, as inferred


def test_dump_with_a_map_column_for_card_data_is_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from expunge.lineage.cards import read_dump

    data = pa.array([[("datasets", MARKED)]], type=pa.map_(pa.string(), pa.string()))
    pq.write_table(pa.table({"id": ["o/a"], "kind": ["model"], "card_data": data}), tmp_path / "d.parquet")
    got = read_dump(tmp_path / "d.parquet")
    assert [(e.parent, e.child) for e in got.edges] == [("laion/laion2b-en", "o/a")]


# --------------------------------------------------------------------------------------------------
# Releases and marks carrying text into notices


def _hostile_release(base: Path, counts: dict[str, object]) -> Path:
    """A real release whose (unsigned) manifest was edited and its self-digest recomputed: it verifies."""
    from expunge.release import manifest as mf
    from expunge.release.verify import verify_release
    from tests.lineage.test_marks import make_release

    release = make_release(base).release
    man = mf.load(release / mf.MANIFEST)
    man["counts"].update(counts)
    (release / mf.MANIFEST).write_bytes(mf.dumps(man))
    assert verify_release(release) == []
    return release


def test_release_with_markup_in_a_signal_name_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from expunge.cli.app import app
    from expunge.errors import ExpungeError

    evil = "<img src=x onerror=alert(1)>\n# Pwned [x](javascript:alert(1)) | y"
    release = _hostile_release(tmp_path, {"removed_by_signal": {"url_md5": 1, evil: 1}})
    got = CliRunner().invoke(
        app, ["lineage", "mark", MARKED, "--release", str(release), "--store", str(tmp_path / "s")]
    )
    assert isinstance(got.exception, ExpungeError)  # main() prints it as one line, exit 2
    message = got.exception.one_line()
    assert "signal name that is not a plain name" in message and "Pwned" not in message
    assert not lm.marks_path(tmp_path / "s" / "lineage").exists()


@pytest.mark.parametrize(
    "counts",
    [
        {"rows_removed": -5},
        {"rows_removed": "12"},
        {"rows_removed": True},
        {"rows_in": 1, "rows_removed": 2},
        {"removed_by_signal": {"url_md5": -1}},
    ],
)
def test_release_counts_that_make_no_sense_are_refused(counts: dict[str, object]) -> None:
    from expunge.errors import ExpungeError

    base: dict[str, object] = {"rows_in": 10, "rows_removed": 2, "removed_by_signal": {"url_md5": 2}}
    man = {"merkle_root": "a" * 64, "files_root": "b" * 64, "counts": {**base, **counts}}
    with pytest.raises(ExpungeError):
        lm.manifest_ref(man, Path("MANIFEST.json"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("successor", "[x](javascript:alert(1))"),
        ("followed", "<script>"),
        ("release", {"merkle_root": "`</code><script>", "rows_in": 1, "rows_removed": 1}),
    ],
)
def test_marks_file_with_text_where_ids_and_roots_belong_is_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    from expunge.errors import ExpungeError

    lm.save(tmp_path, _marks("laion/laion2b-en"), None)
    data = json.loads(lm.marks_path(tmp_path).read_text())
    data["marks"]["laion/laion2b-en"][0][field] = value
    lm.marks_path(tmp_path).write_text(json.dumps(data))
    with pytest.raises(ExpungeError, match=r"marks file|a mark's release"):
        lm.load(tmp_path)


def test_notice_code_spans_cannot_split_a_table_cell() -> None:
    from expunge.lineage.notices import code

    assert code("a|b`c\u2028d\x85e") == "`abcde`"


@pytest.mark.parametrize(("repo", "name"), [("con", "_con.md"), ("nul.x", "_nul.x.md"), ("com1", "_com1.md")])
def test_notice_file_names_avoid_names_windows_reserves(repo: str, name: str) -> None:
    from expunge.lineage.notices import file_name

    assert file_name(repo, set(), "model") == name
    assert file_name("console/x", set(), "model") == "console__x.md"


def test_notices_out_that_is_a_file_says_so(tmp_path: Path) -> None:
    from expunge.errors import ExpungeError
    from expunge.lineage.notices import write_notices

    (tmp_path / "f").write_text("x")
    empty = LineageReport((), (), (), (), 0)
    with pytest.raises(ExpungeError, match="is a file"):
        write_notices(empty, tmp_path / "f")


def test_folder_names_cannot_drive_the_terminal_or_forge_warning_lines(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for name in ("\x1b[31mRED\nwarning: fake line", "x\u202ey", "a\u200bb"):
        folder = root / "models" / "o" / name
        folder.mkdir(parents=True)
        (folder / "README.md").write_text("---\nbase_model: [3]\n---\n")
    cards = read_tree(root)
    labels = {w.card for w in cards.warnings} | {e.card for e in cards.edges}
    assert len(cards.warnings) >= 3
    for label in labels:
        assert label.isprintable() and label.isascii(), label
