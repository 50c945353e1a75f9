"""Cover sets: the public diff of old and new release hides each flagged row among >= K removed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from expunge import api
from tests.conftest import SmallDataset, tree_bytes


def _keys(root: Path) -> set[str]:
    return {
        k
        for p in sorted(root.glob("*.parquet"))
        for k in pq.read_table(p, columns=["key"]).column(0).to_pylist()
    }


def test_cover_hides_flagged_rows_in_the_public_diff(small_ds: SmallDataset, tmp_path: Path) -> None:
    k = 10
    opts = api.Options(store=tmp_path / "store", workers=2, cover=k)
    lists = [f"{small_ds.lists['iwf']}:url_md5", f"{small_ds.lists['c3p']}:url_sha1:canonical"]
    summary = api.clean([str(small_ds.root)], tmp_path / "rel", lists=lists, opts=opts)
    flagged = len(small_ds.flagged)
    gone = summary["rows_removed"] + summary["rows_quarantined"]
    assert gone >= k * flagged
    assert summary["rows_kept"] + gone == summary["rows_in"]
    # What the public sees: the old shards and the new ones. The flagged rows are among the missing...
    missing = _keys(small_ds.root) - _keys(tmp_path / "rel")
    flagged_keys = {
        pq.read_table(small_ds.root / s, columns=["key"]).column(0)[r].as_py() for s, r in small_ds.flagged
    }
    assert flagged_keys <= missing and len(missing) >= k * flagged
    # ...and nothing public says which: no per-row records in the release, one public reason for all.
    rel_files = set(tree_bytes(tmp_path / "rel"))
    assert "removed.parquet" not in rel_files and not any(f.startswith(".expunge") for f in rel_files)
    public = (tmp_path / "rel" / "MANIFEST.json").read_text() + (
        tmp_path / "rel" / "summary.json"
    ).read_text()
    assert not any(key in public for key in missing)
    manifest = json.loads((tmp_path / "rel" / "MANIFEST.json").read_text())
    assert manifest["policy"]["cover"]["k"] == k
    assert sum(manifest["policy"]["cover"]["removed_rows_by_pool"].values()) + flagged == gone
    # The private records stay in the store, with the true reasons.
    private = list((tmp_path / "store").rglob("private/*/removed.parquet"))
    assert len(private) == 1
    reasons = pq.read_table(private[0]).column("reasons").to_pylist()
    assert sum(1 for r in reasons if r != ["cover:removed"] and not r[0].startswith("quarantine:")) == flagged


def test_cover_is_deterministic_for_a_store_and_differs_across_stores(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    lists = [f"{small_ds.lists['iwf']}:url_md5"]
    for out in ("a", "b"):
        api.clean(
            [str(small_ds.root)],
            tmp_path / out,
            lists=lists,
            opts=api.Options(store=tmp_path / "s", workers=1, cover=5),
        )
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    api.clean(
        [str(small_ds.root)],
        tmp_path / "c",
        lists=lists,
        opts=api.Options(store=tmp_path / "s2", workers=1, cover=5),
    )
    assert _keys(tmp_path / "a") != _keys(tmp_path / "c")  # another secret, another cover
