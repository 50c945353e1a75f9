"""Per-row records never carry the dataset's key column, stay in the store unless published on request,
and a release without a cover set says once that a diff against the old release shows which rows went."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from expunge import api
from tests.conftest import SmallDataset

CLI = [sys.executable, "-m", "expunge.cli"]


def _texts(root: Path) -> str:
    """Every file under ``root``, raw and (parquet) decoded column by column."""
    parts = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        parts.append(p.read_bytes().decode("latin-1"))
        if p.suffix == ".parquet":
            table = pq.read_table(p)
            for col in table.columns:
                parts.extend(str(v) for v in col.to_pylist())
    return "\n".join(parts)


def _url_keyed(tmp: Path, key_name: str) -> tuple[Path, Path, list[str]]:
    """A Hub-style dataset whose key column *is* the URL, and a list flagging three of its rows."""
    root = tmp / "ds"
    root.mkdir()
    urls = [f"https://hub{i % 3}.example/img/{i:05d}.jpg" for i in range(300)]
    table = pa.table({key_name: urls, "url": urls, "caption": [f"neutral caption {i}" for i in range(300)]})
    pq.write_table(table, root / "train-00000.parquet")
    flagged = [urls[7], urls[150], urls[299]]
    lst = tmp / "list.txt"
    lst.write_text("".join(hashlib.md5(u.encode()).hexdigest() + "\n" for u in flagged))
    return root, lst, flagged


def test_a_url_key_column_never_reaches_the_records_or_the_release(tmp_path: Path) -> None:
    for key_name in ("id", "key", "uid"):
        base = tmp_path / key_name
        base.mkdir()
        root, lst, flagged = _url_keyed(base, key_name)
        for publish in (False, True):
            out, store = base / f"out-{publish}", base / f"store-{publish}"
            opts = api.Options(store=store, workers=1, publish_records=publish)  # key auto-detected
            summary = api.clean([str(root)], out, lists=[f"{lst}:url_md5"], opts=opts)
            assert summary["rows_removed"] == 3
            haystack = _texts(out) + _texts(store)
            assert not [u for u in flagged if u in haystack or u.split("//", 1)[1] in haystack]
            (records,) = store.rglob("private/*/removed.parquet")
            table = pq.read_table(records)
            assert "key" not in table.column_names and table.column("key_hash").null_count == 0
            # The key holder can still recognise a row by its keyed hash; nobody else can.
            secret = (store / "key").read_bytes()
            expected = hashlib.blake2b(flagged[0].encode(), key=secret, digest_size=16, person=b"sample-key")
            assert expected.digest() in table.column("key_hash").to_pylist()
            assert (out / "removed.parquet").is_file() == publish


def test_records_stay_in_the_store_by_default(small_ds: SmallDataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    api.clean(
        [str(small_ds.root)],
        out,
        lists=[f"{small_ds.lists['iwf']}:url_md5"],
        opts=api.Options(store=tmp_path / "store", workers=2),
    )
    names = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert not any("removed" in n or n.startswith(".") for n in names)
    private = list((tmp_path / "store").rglob("private/*/shards/*.removed.parquet"))
    assert len(private) == 4  # one per shard, with the completion markers, in the store


def test_a_release_without_cover_says_a_diff_reveals_the_removed_rows(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    cmd = [*CLI, "clean", str(small_ds.root), "--list", f"{small_ds.lists['iwf']}:url_md5"]
    plain = subprocess.run(
        [*cmd, "--store", str(tmp_path / "s1"), "--out", str(tmp_path / "plain"), "--json", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.count("diff") == 1 and "--cover" in plain.stderr
    assert "--cover" not in plain.stdout.split('"notice"')[0]  # stdout is the JSON summary
    for name in ("README.md", "report.html"):
        text = (tmp_path / "plain" / name).read_text()
        assert "diff the two" in text and "--cover K" in text, name
    covered = subprocess.run(
        [
            *cmd,
            "--store",
            str(tmp_path / "s2"),
            "--out",
            str(tmp_path / "cov"),
            "--cover",
            "5",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert covered.returncode == 0, covered.stderr
    assert "diff the two" not in covered.stderr + (tmp_path / "cov" / "README.md").read_text()
    assert "Cover set (k = 5)" in (tmp_path / "cov" / "README.md").read_text()
    both = subprocess.run(
        [
            *cmd,
            "--store",
            str(tmp_path / "s3"),
            "--out",
            str(tmp_path / "x"),
            "--cover",
            "5",
            "--publish-records",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert both.returncode == 2 and "publish-records" in both.stderr
