"""Parquet shards on object storage: discovered, read and rewritten through ``expunge.storage``.

Against a real S3 API (moto's server, over HTTP) and fsspec's memory filesystem standing in for the
other protocols.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.s3server import S3Server, s3_server, s3_session  # noqa: F401

from expunge.errors import ExpungeError
from expunge.formats import parquet, registry
from expunge.formats.paths import walk
from expunge.storage import clear_cache, filesystem, parse, put_bytes, put_file


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:  # noqa: F811 (the shared fixture, under a name tests can take)
    return s3_server


def _table(rows: int, seed: int = 0) -> pa.Table:
    return pa.table(
        {
            "URL": [f"https://img{i % 5}.photos.example/{seed}/{i:05d}.jpg" for i in range(rows)],
            "TEXT": [f"a {('red', 'blue', 'green')[i % 3]} mug, photo {i}" for i in range(rows)],
            "similarity": pa.array([(i % 100) / 100 for i in range(rows)], pa.float64()),
        }
    )


def _write(tmp_path: Path, name: str, rows: int = 300, seed: int = 0) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(rows, seed), path, row_group_size=100)
    return path


def _upload_dataset(tmp_path: Path, base: str) -> dict[str, Path]:
    """Three shards (one in a subfolder) plus what discovery must skip; returns name -> local copy."""
    names = ["part-0.parquet", "part-2.parquet", "sub/part-1.parquet"]
    local = {n: _write(tmp_path / "src", n, seed=i) for i, n in enumerate(names)}
    for name, path in local.items():
        put_file(path, f"{base}/{name}")
    for junk in ("_temporary/0/part-9.parquet", ".hidden.parquet", "sub/.expunge-tmp-x.parquet"):
        put_file(local["part-0.parquet"], f"{base}/{junk}")
    put_bytes(f"{base}/notes.txt", b"not a shard")
    return local


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://expunge-remote-parquet-{time.monotonic_ns()}"
    yield root
    fs = filesystem(parse(root))
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_discover_a_remote_dataset(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    base = f"s3://{bucket}/laion"
    _upload_dataset(tmp_path, base)
    for spec in (base, base + "/"):
        root, shards = parquet.discover([spec])
        assert root == base
        assert [(s.name, s.path) for s in shards] == [
            ("part-0.parquet", f"{base}/part-0.parquet"),
            ("part-2.parquet", f"{base}/part-2.parquet"),
            ("sub/part-1.parquet", f"{base}/sub/part-1.parquet"),
        ]
    # Through the registry: the remote dataset is parquet (no other format claims it).
    root, found, fmt = registry.discover([base])
    assert fmt == "parquet" and [s.location for s in found] == [s.path for s in shards]
    # A glob, and a single object named explicitly (its folder is the root, as locally).
    root, shards = parquet.discover([f"{base}/part-*.parquet"])
    assert root == base and [s.name for s in shards] == ["part-0.parquet", "part-2.parquet"]
    root, shards = parquet.discover([f"{base}/sub/part-1.parquet"])
    assert root == f"{base}/sub" and [s.name for s in shards] == ["part-1.parquet"]
    # Two specs under one bucket: named below their common prefix.
    root, shards = parquet.discover([f"{base}/sub", f"{base}/part-0.parquet"])
    assert root == base and [s.name for s in shards] == ["part-0.parquet", "sub/part-1.parquet"]


def test_a_release_record_is_not_a_shard(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    base = f"s3://{bucket}/release"
    shard = _write(tmp_path, "part-0.parquet")
    put_file(shard, f"{base}/part-0.parquet")
    put_file(shard, f"{base}/removed.parquet")
    assert [s.name for s in parquet.discover([base])[1]] == ["part-0.parquet", "removed.parquet"]
    put_bytes(f"{base}/MANIFEST.json", b"{}")
    assert [s.name for s in parquet.discover([base])[1]] == ["part-0.parquet"]


def test_missing_remote_datasets_are_one_line(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    with pytest.raises(ExpungeError) as info:
        parquet.discover([f"s3://{bucket}/nothing-here/"])
    assert str(info.value) == f"s3://{bucket}/nothing-here: no parquet shards found"
    with pytest.raises(ExpungeError) as info:
        registry.discover([f"s3://{bucket}/nothing-here"])
    assert str(info.value) == f"s3://{bucket}/nothing-here: no parquet shards found"
    with pytest.raises(ExpungeError) as info:
        parquet.discover(["s3://no-such-bucket-expunge-fmt/laion/"])
    assert str(info.value) == "s3://no-such-bucket-expunge-fmt/laion: bucket not found"
    put_bytes(f"s3://{bucket}/ds/notes.txt", b"x")
    with pytest.raises(ExpungeError) as info:
        parquet.discover([f"s3://{bucket}/ds/*.parquet"])
    assert str(info.value) == f"s3://{bucket}/ds/*.parquet: no parquet shards found"
    # Credentials in a URL are refused, and not shown.
    with pytest.raises(ExpungeError) as info:
        parquet.discover([f"s3://AKIAXX:se/cr+et@{bucket}/ds/"])
    assert "se/cr+et" not in str(info.value) and "AKIAXX" not in str(info.value)
    # One dataset has one root: local and remote specs together are refused before any listing.
    local = _write(tmp_path, "a.parquet")
    with pytest.raises(ExpungeError, match="either local or remote"):
        parquet.discover([str(local), f"s3://{bucket}/ds/"])


def test_shards_in_two_buckets_are_refused(s3: S3Server, tmp_path: Path) -> None:
    a, b = s3.make_bucket(), s3.make_bucket()
    shard = _write(tmp_path, "p.parquet")
    put_file(shard, f"s3://{a}/ds/p.parquet")
    put_file(shard, f"s3://{b}/ds/p.parquet")
    with pytest.raises(ExpungeError, match="share one bucket"):
        parquet.discover([f"s3://{a}/ds", f"s3://{b}/ds"])


def test_remote_readers_match_local(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    local = _write(tmp_path, "part-0.parquet", rows=250)
    url = f"s3://{bucket}/laion/part-0.parquet"
    put_file(local, url)
    assert parquet.detect_columns(url) == parquet.detect_columns(str(local))
    assert parquet.num_rows(url) == 250
    assert parquet.settings_of(parquet.open_file(url)) == parquet.settings_of(parquet.open_file(str(local)))
    for column in ("URL", "TEXT"):
        remote = list(parquet.iter_text(url, column))
        assert [len(a) for a in remote] == [100, 100, 50]
        assert pa.concat_arrays(remote).equals(pa.concat_arrays(list(parquet.iter_text(str(local), column))))
    assert parquet.file_sha256(url) == hashlib.sha256(local.read_bytes()).hexdigest()
    assert parquet.file_sha256(url, chunk=1000) == parquet.file_sha256(str(local))
    with pytest.raises(ExpungeError) as info:
        list(parquet.iter_column(url, "nope"))
    assert str(info.value) == f"{url}: no column 'nope' in this shard"


def test_rewrite_from_a_remote_source_equals_the_local_rewrite(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    local = _write(tmp_path, "part-0.parquet", rows=300)
    url = f"s3://{bucket}/laion/part-0.parquet"
    put_file(local, url)
    keep = np.ones(300, dtype=bool)
    keep[[0, 7, 150, 299]] = False
    got: dict[str, pa.Array] = {}
    want: dict[str, pa.Array] = {}
    n_remote = parquet.rewrite(url, tmp_path / "remote.parquet", keep, ("URL",), got)
    n_local = parquet.rewrite(str(local), tmp_path / "local.parquet", keep, ("URL",), want)
    assert n_remote == n_local == 296
    assert (tmp_path / "remote.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert got["URL"].equals(want["URL"]) and len(got["URL"]) == 4


def test_not_parquet_and_missing_objects(s3: S3Server) -> None:
    bucket = s3.make_bucket()
    url = f"s3://{bucket}/ds/bad.parquet"
    put_bytes(url, b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(ExpungeError) as info:
        parquet.open_file(url)
    assert str(info.value).startswith(f"{url}: not a readable parquet file")
    with pytest.raises(ExpungeError) as info:
        parquet.num_rows(f"s3://{bucket}/ds/absent.parquet")
    assert str(info.value) == f"s3://{bucket}/ds/absent.parquet: not found"
    with pytest.raises(ExpungeError) as info:
        parquet.file_sha256(f"s3://{bucket}/ds/absent.parquet")
    assert str(info.value) == f"s3://{bucket}/ds/absent.parquet: not found"


def test_a_stopped_server_is_one_line(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_cache()
    bucket = s3.make_bucket()
    url = f"s3://{bucket}/laion/part-0.parquet"
    put_file(_write(tmp_path, "part-0.parquet"), url)
    opened = parquet.open_file(url)  # footer read; the row groups are read after the stop
    s3.stop()
    for call in (
        lambda: parquet.read_row_group(opened, url, 1, 100, ["URL"]),
        lambda: parquet.open_file(url),
        lambda: list(parquet.iter_text(url, "URL")),
        lambda: parquet.file_sha256(url),
        lambda: parquet.discover([f"s3://{bucket}/laion/"]),
    ):
        with pytest.raises(ExpungeError) as info:
            call()
        text = str(info.value)
        assert text.endswith(": cannot reach the storage endpoint"), text
        assert text.startswith(f"s3://{bucket}/laion") and "testing" not in text and "\n" not in text


def test_memory_filesystem_stands_in_for_other_protocols(memory_root: str, tmp_path: Path) -> None:
    local = _upload_dataset(tmp_path, f"{memory_root}/ds")
    root, shards = parquet.discover([f"{memory_root}/ds/"])
    assert root == f"{memory_root}/ds"
    assert [s.name for s in shards] == ["part-0.parquet", "part-2.parquet", "sub/part-1.parquet"]
    url = shards[2].path
    assert parquet.num_rows(url) == 300
    assert parquet.file_sha256(url) == hashlib.sha256(local["sub/part-1.parquet"].read_bytes()).hexdigest()
    keep = np.arange(300) % 3 != 0
    parquet.rewrite(url, tmp_path / "r.parquet", keep)
    parquet.rewrite(str(local["sub/part-1.parquet"]), tmp_path / "l.parquet", keep)
    assert (tmp_path / "r.parquet").read_bytes() == (tmp_path / "l.parquet").read_bytes()
    assert walk([f"{memory_root}/ds/*.parquet"], lambda f: f.endswith(".parquet"), "parquet")[1] == [
        f"{memory_root}/ds/part-0.parquet",
        f"{memory_root}/ds/part-2.parquet",
    ]


def test_local_walk_is_unchanged(tmp_path: Path) -> None:
    _write(tmp_path / "ds", "a.parquet")
    _write(tmp_path / "ds", "b/c.parquet")
    _write(tmp_path / "ds", "_tmp/d.parquet")
    root, paths = walk([str(tmp_path / "ds")], lambda f: f.endswith(".parquet"), "parquet")
    assert root == str(tmp_path / "ds")
    assert paths == [str(tmp_path / "ds" / "a.parquet"), str(tmp_path / "ds" / "b" / "c.parquet")]
    with pytest.raises(ExpungeError) as info:
        walk([str(tmp_path / "ds" / "_tmp")], lambda f: False, "parquet")
    assert str(info.value) == f"{tmp_path / 'ds' / '_tmp'}: no parquet shards found"
