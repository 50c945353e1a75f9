"""The index → match → clean flow through the Python API: accounting, fidelity, incrementality."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from expunge import api
from tests.conftest import SmallDataset, build_small_dataset, tree_bytes


def _clean(ds: SmallDataset, tmp: Path, out: str = "out", workers: int = 2, store: str = "store") -> dict:
    opts = api.Options(store=tmp / store, workers=workers)
    return api.clean(
        [str(ds.root)],
        tmp / out,
        lists=[f"{ds.lists['iwf']}:url_md5", f"{ds.lists['c3p']}:url_sha1:canonical"],
        opts=opts,
    )


def _records(store: Path) -> Path:
    """The store-private removal records of the one release written from ``store``."""
    (found,) = store.rglob("private/*/removed.parquet")
    return found


def test_row_accounting_per_shard_and_total(small_ds: SmallDataset, tmp_path: Path) -> None:
    summary = _clean(small_ds, tmp_path)
    assert summary["rows_in"] == small_ds.rows
    assert summary["rows_removed"] == len(small_ds.flagged)
    assert summary["rows_quarantined"] == len(small_ds.quarantine)
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]
    for shard in summary["shards"]:
        assert shard["rows_kept"] + shard["rows_removed"] + shard["rows_quarantined"] == shard["rows_in"]
        assert pq.ParquetFile(tmp_path / "out" / shard["name"]).metadata.num_rows == shard["rows_kept"]
    assert not (tmp_path / "out" / "removed.parquet").exists()  # private unless --publish-records
    removed = pq.read_table(_records(tmp_path / "store")).to_pylist()
    got = {(r["shard"], r["row"]) for r in removed if r["action"] == "removed"}
    assert got == small_ds.flagged
    assert {(r["shard"], r["row"]) for r in removed if r["action"] == "quarantined"} == small_ds.quarantine
    assert summary["quarantined_by_reason"] == {"null_url": 3, "empty_url": 3, "unparseable_url": 6}
    assert set(summary["removed_by_signal"]) == {"url_md5", "url_sha1"}


def test_kept_rows_are_the_source_rows_in_order(small_ds: SmallDataset, tmp_path: Path) -> None:
    _clean(small_ds, tmp_path)
    gone = small_ds.flagged | small_ds.quarantine
    for src in sorted(small_ds.root.glob("*.parquet")):
        source = pq.read_table(src)
        keep = [i for i in range(source.num_rows) if (src.name, i) not in gone]
        out = pq.read_table(tmp_path / "out" / src.name)
        assert out.equals(source.take(keep))
        assert out.schema.metadata == source.schema.metadata
        a, b = pq.ParquetFile(src).metadata, pq.ParquetFile(tmp_path / "out" / src.name).metadata
        assert b.row_group(0).num_rows == a.row_group(0).num_rows
        assert all(b.row_group(i).num_rows == a.row_group(0).num_rows for i in range(b.num_row_groups - 1))
        assert b.row_group(0).column(1).compression == a.row_group(0).column(1).compression


def test_untouched_shard_is_the_same_file(small_ds: SmallDataset, tmp_path: Path) -> None:
    summary = _clean(small_ds, tmp_path)
    src = small_ds.root / small_ds.clean_shard
    out = tmp_path / "out" / small_ds.clean_shard
    assert out.read_bytes() == src.read_bytes()
    assert os.stat(out).st_ino == os.stat(src).st_ino  # hard-linked on this filesystem
    assert summary["shards_copied"] == 1 and summary["shards_rewritten"] == len(summary["shards"]) - 1
    entry = next(s for s in summary["shards"] if s["name"] == small_ds.clean_shard)
    assert entry["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_rerun_is_identical_and_resumes_everything(small_ds: SmallDataset, tmp_path: Path) -> None:
    _clean(small_ds, tmp_path)
    first = tree_bytes(tmp_path / "out")
    _clean(small_ds, tmp_path)
    assert tree_bytes(tmp_path / "out") == first


def test_output_does_not_depend_on_worker_count(small_ds: SmallDataset, tmp_path: Path) -> None:
    _clean(small_ds, tmp_path, out="one", workers=1, store="s1")
    _clean(small_ds, tmp_path, out="two", workers=2, store="s2")
    one, two = tree_bytes(tmp_path / "one"), tree_bytes(tmp_path / "two")
    # The records (keyed hashes, keyed per store) stay in the stores: the releases are byte-identical.
    assert one == two


def test_index_is_incremental(small_ds: SmallDataset, tmp_path: Path) -> None:
    opts = api.Options(store=tmp_path / "store", workers=1)
    api.import_list(small_ds.lists["iwf"], store=tmp_path / "store", signal="url_md5")
    first = api.index([str(small_ds.root)], opts=opts)
    assert first.shards_run == 4
    again = api.index([str(small_ds.root)], opts=opts)
    assert again.shards_run == 0
    # Touched but unchanged: re-hashed, not re-indexed.
    shard = small_ds.root / "part-00001.parquet"
    os.utime(shard, ns=(1, 1))
    touched = api.index([str(small_ds.root)], opts=opts)
    assert touched.shards_run == 1 and touched.details["rows_read"] == 0
    # Changed content: re-indexed.
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, 1000), shard, row_group_size=500)
    changed = api.index([str(small_ds.root)], opts=opts)
    assert changed.shards_run == 1 and changed.details["rows_read"] == 1000
    # A new shard: only it is indexed.
    pq.write_table(table.slice(0, 10), small_ds.root / "part-00009.parquet")
    added = api.index([str(small_ds.root)], opts=opts)
    assert added.shards_run == 1 and added.details["rows_read"] == 10


def test_a_new_bank_feature_is_added_without_reindexing_others(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    opts = api.Options(store=store, workers=1)
    api.import_list(small_ds.lists["iwf"], store=store, signal="url_md5")
    api.index([str(small_ds.root)], opts=opts)
    api.import_list(small_ds.lists["c3p"], store=store, signal="url_sha1", recipe="canonical")
    rep = api.index([str(small_ds.root)], opts=opts)
    assert rep.shards_run == 4 and rep.details["features"] == ["url:canonical:sha1", "url:raw:md5"]


def test_match_is_incremental_when_a_bank_grows_or_shrinks(small_ds: SmallDataset, tmp_path: Path) -> None:
    store = tmp_path / "store"
    opts = api.Options(store=store, workers=1)
    lines = small_ds.lists["iwf"].read_text().splitlines()
    partial = tmp_path / "iwf.csv"
    partial.write_text("\n".join(lines[:5]) + "\n")
    api.import_list(partial, store=store, name="iwf", signal="url_md5")
    first = api.match([str(small_ds.root)], opts=opts)
    assert first["rows_matched_by_bank"]["iwf"] == 4
    assert first["stage"].details["modes"] == {"full": 4}
    partial.write_text("\n".join(lines) + "\n")
    api.import_list(partial, store=store, name="iwf", signal="url_md5")
    grown = api.match([str(small_ds.root)], opts=opts)
    assert grown["stage"].details["modes"] == {"incremental": 4}
    expected = len(lines) - 2  # header and decoy
    assert grown["rows_matched_by_bank"]["iwf"] == expected
    # The same answer as a full match in a fresh store.
    api.import_list(partial, store=tmp_path / "fresh", name="iwf", signal="url_md5")
    full = api.match([str(small_ds.root)], opts=api.Options(store=tmp_path / "fresh", workers=1))
    assert full["rows_matched_by_bank"] == grown["rows_matched_by_bank"]
    # Shrinking drops findings whose value left the bank.
    partial.write_text("\n".join(lines[:3]) + "\n")
    api.import_list(partial, store=store, name="iwf", signal="url_md5")
    shrunk = api.match([str(small_ds.root)], opts=opts)
    assert shrunk["rows_matched_by_bank"]["iwf"] == 2


def test_output_inside_dataset_is_refused(small_ds: SmallDataset, tmp_path: Path) -> None:
    from expunge.errors import ExpungeError

    with pytest.raises(ExpungeError, match="must not contain"):
        _clean(small_ds, tmp_path, out="dataset/cleaned")


def test_bigger_dataset_builder_smoke(tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=300, row_group_size=100)
    summary = _clean(ds, tmp_path)
    assert summary["rows_in"] == 600


def test_a_shard_that_left_the_dataset_leaves_the_release(small_ds: SmallDataset, tmp_path: Path) -> None:
    _clean(small_ds, tmp_path)
    (small_ds.root / "part-00000.parquet").unlink()
    summary = _clean(small_ds, tmp_path)
    assert not (tmp_path / "out" / "part-00000.parquet").exists()
    assert [s["name"] for s in summary["shards"]] == [
        "part-00001.parquet",
        "part-00002.parquet",
        "part-00003.parquet",
    ]
    removed = pq.read_table(_records(tmp_path / "store"))
    assert "part-00000.parquet" not in set(removed.column("shard").to_pylist())
