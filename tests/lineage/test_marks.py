"""Marks: a history per dataset, a successor read from a release that verifies (fail closed), and the
evidence ``apply`` records for a derivative it cleaned."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.atomic import read_json
from expunge.errors import ExpungeError
from expunge.lineage import marks as lm
from expunge.store import Store
from tests.conftest import SmallDataset, build_small_dataset


@dataclass
class Released:
    ds: SmallDataset
    release: Path
    store: Path
    merkle_root: str
    rows_removed: int
    by_signal: dict[str, int]


def make_release(base: Path) -> Released:
    """A tiny real release: two shards of synthetic rows cleaned against a SYNTHETIC md5 list."""
    ds = build_small_dataset(base, shards=2, rows_per_shard=300, row_group_size=100)
    store = base / "store"
    out = base / "release"
    api.clean(
        [str(ds.root)], out, lists=[f"{ds.lists['iwf']}:url_md5"], opts=api.Options(store=store, workers=1)
    )
    man = read_json(out / "MANIFEST.json")
    counts = man["counts"]
    assert counts["rows_removed"] > 0
    return Released(ds, out, store, man["merkle_root"], counts["rows_removed"], counts["removed_by_signal"])


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return make_release(tmp_path_factory.mktemp("marks"))


def test_mark_records_the_release_and_keeps_history(released: Released, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = api.lineage_mark("LAION/laion2B-en", release=released.release, store=store)
    assert first.dataset == "laion/laion2b-en"
    assert first.merkle_root == released.merkle_root and first.rows_removed == released.rows_removed
    assert first.history == 1
    assert any("not in the lineage graph" in w for w in first.warnings)  # no graph built yet
    second = api.lineage_mark(
        "laion/laion2b-en", status="withdrawn", successor="laion/relaion2b-en", store=store
    )
    assert second.history == 2
    marks = lm.load(Store(store).lineage_dir())
    history = marks.history["laion/laion2b-en"]
    assert [m.status for m in history] == ["removed", "withdrawn"]
    assert history[0].release is not None and history[0].release.merkle_root == released.merkle_root
    assert history[0].release.removed_by_signal == released.by_signal
    # The removal still explains the taint; the newest status makes the dataset a dangling pointer.
    assert marks.removals()["laion/laion2b-en"].release == history[0].release
    assert marks.pointers()["laion/laion2b-en"].successor == "laion/relaion2b-en"
    # Written atomically, nothing left behind, and it round-trips.
    lineage = Store(store).lineage_dir()
    assert sorted(p.name for p in lineage.iterdir()) == ["marks.json"]
    assert lm.load(lineage).public() == marks.public()


def test_a_release_that_does_not_verify_is_refused(released: Released, tmp_path: Path) -> None:
    bad = tmp_path / "edited"
    shutil.copytree(released.release, bad)
    shard = next(bad.glob("*.parquet"))
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, table.num_rows - 1), shard)  # one row fewer than the manifest says
    store = tmp_path / "store"
    with pytest.raises(ExpungeError, match="does not verify"):
        api.lineage_mark("laion/laion2b-en", release=bad, store=store)
    assert not (Store(store).lineage_dir() / "marks.json").exists()  # nothing recorded
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "unlisted.txt").write_text("x")
    shutil.copytree(released.release, stray / "rel")
    (stray / "rel" / "extra.txt").write_text("not in the manifest")
    with pytest.raises(ExpungeError, match="does not verify"):
        api.lineage_mark("laion/laion2b-en", release=stray / "rel", store=store)
    with pytest.raises(ExpungeError):
        api.lineage_mark("laion/laion2b-en", release=tmp_path / "missing", store=store)


@pytest.mark.parametrize(
    ("dataset", "kwargs", "message"),
    [
        ("not an id!", {}, "not a repo id"),
        ("a/b/c", {}, "not a repo id"),
        ("laion/x", {"status": "deleted"}, "unknown status"),
        ("laion/x", {"status": "renamed"}, "needs --successor"),
        ("laion/x", {"status": "renamed", "successor": "<b>/x"}, "successor is not a repo id"),
    ],
)
def test_bad_marks_are_refused(dataset: str, kwargs: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match=message):
        api.lineage_mark(dataset, store=tmp_path / "store", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "store" / "lineage" / "marks.json").exists()


def test_a_corrupt_marks_file_is_refused_not_emptied(tmp_path: Path) -> None:
    lineage = Store(tmp_path / "store").lineage_dir()
    lineage.mkdir(parents=True)
    for text in ("{", json.dumps({"format": "other"}), json.dumps({"format": lm.FORMAT, "marks": []})):
        (lineage / "marks.json").write_text(text)
        with pytest.raises(ExpungeError):
            api.lineage_mark("laion/x", store=tmp_path / "store")
        assert (lineage / "marks.json").read_text() == text


def test_apply_records_evidence_for_the_derivative(released: Released, tmp_path: Path) -> None:
    # A derivative: the first shard of the original (it still holds rows the release removed).
    derivative = tmp_path / "derivative"
    derivative.mkdir()
    shutil.copy(released.ds.root / "part-00000.parquet", derivative / "part-00000.parquet")
    store = tmp_path / "store"
    opts = api.Options(store=store, workers=1)
    summary = api.apply(
        released.release, [str(derivative)], tmp_path / "out", lineage_id="Someone/Subset", opts=opts
    )
    assert summary["rows_removed"] > 0
    marks = lm.load(Store(store).lineage_dir())
    (check,) = marks.evidence["someone/subset"]
    assert check.lineage_id == "someone/subset" and check.followed == released.merkle_root
    assert check.result.rows_removed == summary["rows_removed"]
    assert check.result.merkle_root == read_json(tmp_path / "out" / "MANIFEST.json")["merkle_root"]
    mark = marks.removals()["someone/subset"]
    assert mark.source == "evidence" and mark.rows_removed == summary["rows_removed"]
    # Without a lineage id the derivative is named by its root folder, and is not a graph root.
    api.apply(released.release, [str(derivative)], tmp_path / "out2", opts=opts)
    marks = lm.load(Store(store).lineage_dir())
    assert str(derivative.absolute()) in marks.evidence
    assert set(marks.removals()) == {"someone/subset"}
    text = (Store(store).lineage_dir() / "marks.json").read_text()
    assert "example" not in text and "mug" not in text  # counts and roots only


def test_apply_refuses_a_bad_lineage_id_before_any_work(released: Released, tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match="lineage-id"):
        api.apply(
            released.release,
            [str(released.ds.root)],
            tmp_path / "out",
            lineage_id="[x](http://a)",
            opts=api.Options(store=tmp_path / "store", workers=1),
        )
    assert not (tmp_path / "out").exists()
