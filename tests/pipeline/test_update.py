"""The daily list update (issue 12): the same clean after the list file gains values that match nothing
writes no shard again; one that adds findings in k shards rewrites those k shards only, and the release
equals a from-scratch run's shard for shard."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from typer.testing import CliRunner

from expunge.cli.app import app
from tests.conftest import build_small_dataset


def _clean(ds: Path, iwf: Path, store: Path, out: Path) -> dict[str, object]:
    args = ["clean", str(ds), "--list", f"{iwf}:url_md5", "--store", str(store), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--workers", "2", "--json", "-q"])
    assert res.exit_code == 0, res.output
    return dict(json.loads(res.stdout[res.stdout.index("{") :]))


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("*.parquet"))}


def _manifest_shards(out: Path) -> dict[str, object]:
    man = json.loads((out / "MANIFEST.json").read_text())
    return {s["name"]: s for s in man["shards"]}


def test_an_update_that_matches_nothing_rewrites_no_shard(tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=4, rows_per_shard=1_000)
    iwf = ds.lists["iwf"]
    store, out = tmp_path / "store", tmp_path / "out"
    first = _clean(ds.root, iwf, store, out)
    before, shards_before = _stamps(out), _manifest_shards(out)
    # The hotline's daily file: the same values plus many that match nothing (SYNTHETIC).
    with iwf.open("a") as fh:
        fh.writelines(
            f"{hashlib.md5(f'nothing-{i}'.encode()).hexdigest()},{10_000 + i},synthetic\n" for i in range(500)
        )
    second = _clean(ds.root, iwf, store, out)
    assert second["rows_removed"] == first["rows_removed"]
    assert _stamps(out) == before  # not one shard written again
    assert _manifest_shards(out) == shards_before  # and not one shard entry of the manifest changed
    assert second["banks"] != first["banks"]  # the bank's new version is recorded


def test_an_update_with_new_findings_rewrites_only_their_shard(tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=4, rows_per_shard=1_000)
    iwf = ds.lists["iwf"]
    store, out = tmp_path / "store", tmp_path / "out"
    _clean(ds.root, iwf, store, out)
    before, shards_before = _stamps(out), _manifest_shards(out)
    i = 500  # row 500 of shard 2, as tests.conftest writes it
    url = f"https://img{i % 13}.photos.example/2/{i:06d}/view-{i * 7 % 1000}.jpg?w=512"
    with iwf.open("a") as fh:
        fh.write(f"{hashlib.md5(url.encode()).hexdigest()},77777,synthetic\n")
    _clean(ds.root, iwf, store, out)
    after, shards_after = _stamps(out), _manifest_shards(out)
    changed = {n for n in after if after[n] != before[n]}
    assert changed == {"part-00002.parquet"}
    assert {n for n in shards_after if shards_after[n] != shards_before[n]} == {"part-00002.parquet"}
    # From scratch with the grown list: the same shard bytes.
    fresh = tmp_path / "fresh"
    (tmp_path / "store2").mkdir()
    (tmp_path / "store2" / "key").write_bytes((store / "key").read_bytes())
    _clean(ds.root, iwf, tmp_path / "store2", fresh)
    for name in after:
        assert (fresh / name).read_bytes() == (out / name).read_bytes(), name
    assert os.path.exists(out / "MANIFEST.json")


def _records(out: Path) -> list[tuple[str, int, bytes, bytes, str]]:
    import pyarrow.parquet as pq

    t = pq.read_table(out / "removed.parquet")
    cols = [t.column(c).to_pylist() for c in ("shard", "row", "row_key", "key_hash", "action")]
    return sorted(zip(*cols, strict=True))


def test_records_name_rows_alike_when_captured_reused_or_read(tmp_path: Path) -> None:
    """A first run names removed rows from the values its rewrite read; an update that removes the same
    rows reuses the last records' names. Both must equal the keyed hashes of the dataset's own values."""
    import pyarrow.parquet as pq

    ds = build_small_dataset(tmp_path, shards=3, rows_per_shard=1_000)
    iwf = ds.lists["iwf"]
    store, out = tmp_path / "store", tmp_path / "out"

    def clean() -> None:
        args = ["clean", str(ds.root), "--list", f"{iwf}:url_md5", "--store", str(store), "--out", str(out)]
        res = CliRunner().invoke(app, [*args, "--workers", "2", "--publish-records", "-q"])
        assert res.exit_code == 0, res.output

    clean()
    first = _records(out)
    assert first
    key = (store / "key").read_bytes()
    for shard, row, row_key, key_hash, _ in first:
        t = pq.read_table(ds.root / shard, columns=["url", "key"]).slice(row, 1).to_pylist()[0]
        url = t["url"].encode("utf-8") if t["url"] is not None else None
        assert row_key == (None if url is None else hashlib.blake2b(url, key=key, digest_size=16).digest())
        assert (
            key_hash
            == hashlib.blake2b(str(t["key"]).encode(), key=key, digest_size=16, person=b"sample-key").digest()
        )
    with iwf.open("a") as fh:
        fh.writelines(
            f"{hashlib.md5(f'none-{i}'.encode()).hexdigest()},{20_000 + i},synthetic\n" for i in range(50)
        )
    clean()
    assert _records(out) == first


def test_an_update_that_matches_nothing_writes_no_findings_and_the_next_clean_trusts_them(
    tmp_path: Path,
) -> None:
    """The state file alone moves to the grown list's version; a later update that does match in one
    shard rewrites that shard's findings only, and removes its row."""
    ds = build_small_dataset(tmp_path, shards=3, rows_per_shard=600)
    iwf = ds.lists["iwf"]
    store, out = tmp_path / "store", tmp_path / "out"
    first = _clean(ds.root, iwf, store, out)

    def findings() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in sorted(store.rglob("findings/*.parquet"))}

    before = findings()
    with iwf.open("a") as fh:
        fh.writelines(
            f"{hashlib.md5(f'nil-{i}'.encode()).hexdigest()},{30_000 + i},synthetic\n" for i in range(40)
        )
    second = _clean(ds.root, iwf, store, out)
    assert findings() == before and second["rows_removed"] == first["rows_removed"]
    i = 300  # row 300 of shard 1, as tests.conftest writes it
    url = f"https://img{i % 13}.photos.example/1/{i:06d}/view-{i * 7 % 1000}.jpg?w=512"
    with iwf.open("a") as fh:
        fh.write(f"{hashlib.md5(url.encode()).hexdigest()},88888,synthetic\n")
    third = _clean(ds.root, iwf, store, out)
    after = findings()
    assert len([n for n in after if after[n] != before[n]]) == 1
    assert third["rows_removed"] == first["rows_removed"] + 1
