"""The store's layout is an on-disk format: a store written by an earlier expunge must still be read,
so every path ``Store`` builds is pinned here, name for name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from expunge.store import Store


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def test_every_store_path_keeps_its_name(tmp_path: Path) -> None:
    s = Store(tmp_path)
    ds = tmp_path / "datasets" / "data-abc"
    shard = f"b-{_h('a/b.parquet', 16)}"
    assert s.dataset_file("data-abc") == ds / "dataset.json"
    assert s.index_dir("data-abc", "a/b.parquet") == ds / "index" / shard
    assert s.findings("data-abc", "a/b.parquet") == (
        ds / "findings" / f"{shard}.parquet",
        ds / "findings" / f"{shard}.state.json",
    )
    assert s.cover_state("data-abc") == ds / "cover.parquet"
    out = tmp_path / "release"
    private = ds / "private" / _h(str(out.resolve()), 16)
    assert s.private_dir("data-abc", out) == private
    assert Store.private_shards(private) == private / "shards"
    assert Store.clean_marker(private, "x/y.tar") == (
        private / "shards" / f"y.tar.{_h('x/y.tar', 12)}.json",
        private / "shards" / f"y.tar.{_h('x/y.tar', 12)}.removed.parquet",
    )
    assert Store.private_records(private) == private / "removed.parquet"
    assert Store.files_cache(private) == private / "files.json"
    bank = tmp_path / "banks" / "my_list"
    assert s.bank_dir("my list") == bank
    assert s.bank_file("my list") == bank / "bank.json"
    assert s.bank_delta("my list", 3, "added") == bank / "deltas" / "v0003.added.parquet"
    assert s.bank_delta("my list", 12, "removed") == bank / "deltas" / "v0012.removed.parquet"
    assert Store.bank_values_name(7) == "values-v0007.parquet"
    assert s.run_record("20240101T000000.000000Z", "clean") == (
        tmp_path / "runs" / "20240101T000000.000000Z-clean.json"
    )


def test_a_folder_shard_at_the_root_has_a_marker_too(tmp_path: Path) -> None:
    marker, records = Store.clean_marker(tmp_path, ".")
    assert marker.parent == records.parent == tmp_path / "shards"
    assert marker.name == f".{_h('.', 12)}.json"
