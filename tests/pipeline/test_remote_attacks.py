"""Hostile and unlucky situations for the remote flow (real CLI in its own process, moto's S3 server).

Each test is an attack that once found a defect: a dataset object replaced while a run used it, an
``--out`` that overlaps the store, an ``--out`` that holds someone else's objects.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import SmallDataset, build_small_dataset
from tests.pipeline.test_remote_flow import _cli, _objects, _upload
from tests.s3server import S3Server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("EXPUNGE_CACHE", str(path))
    return path


def _hooked_cli(hook: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI with ``hook`` (Python source) run first in the same process: how a test makes
    something happen at an exact point of a run (``--workers 1`` keeps the tasks in this process)."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r})\n{hook}\n" + (
        "from expunge.cli.app import main; sys.argv[0] = 'expunge'; main()"
    )
    cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def _flagged_urls(ds: SmallDataset) -> list[bytes]:
    """The URLs of the rows the ``iwf`` list (raw URL MD5s) flags."""
    listed = {line.split(",")[0] for line in ds.lists["iwf"].read_text().splitlines()}
    urls: list[bytes] = []
    for shard, row in sorted(ds.flagged):
        value = str(pq.read_table(ds.root / shard, columns=["url"]).column("url")[row].as_py())
        if hashlib.md5(value.encode()).hexdigest() in listed:
            urls.append(value.encode())
    assert urls
    return urls


def _replace_with_flagged(bucket: str, ds: SmallDataset) -> str:
    """Hook source: put the bytes of a shard with flagged rows over the shard that has none."""
    flagged_shard = sorted(name for name, _ in ds.flagged)[0]
    return (
        "import boto3\n"
        "def _swap():\n"
        "    c = boto3.client('s3')\n"
        f"    body = c.get_object(Bucket={bucket!r}, Key='data/{flagged_shard}')['Body'].read()\n"
        f"    c.put_object(Bucket={bucket!r}, Key='data/{ds.clean_shard}', Body=body)\n"
    )


def _clean_args(bucket: str, ds: SmallDataset) -> list[str]:
    return [
        "clean",
        f"s3://{bucket}/data",
        "--list",
        f"{ds.lists['iwf']}:url_md5",
        "--store",
        f"s3://{bucket}/store",
        "--out",
        f"s3://{bucket}/out",
        "--workers",
        "1",
        "-q",
    ]


def _assert_contained(published: dict[str, bytes], ds: SmallDataset) -> None:
    """No flagged URL in any object: in its bytes, nor (shards are compressed) in its URL column."""
    urls = _flagged_urls(ds)
    for name, body in published.items():
        values = set(urls)
        if name.endswith(".parquet"):
            column = pq.read_table(pa.BufferReader(body), columns=["url"]).column("url")
            values &= {str(v).encode() for v in column.to_pylist()}
            assert not values, name
        for url in urls:
            assert url not in body, name


def test_a_shard_replaced_before_its_server_side_copy_is_not_published(
    s3_server: S3Server, cache: Path, tmp_path: Path
) -> None:
    """An untouched shard is copied server-side at publish, after it was staged and hashed into the
    manifest. Replaced in between (here: by a shard holding flagged rows), the copy once published the
    new bytes under the old manifest line. The published object must be the staged bytes."""
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=300, row_group_size=100)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    hook = _replace_with_flagged(bucket, ds) + (
        "from expunge.storage import fs\n"
        "_real, _done = fs.copy, []\n"
        "def _copy(src, dst, *a, **k):\n"
        "    if not _done:\n"
        "        _done.append(1)\n"
        "        _swap()\n"
        "    return _real(src, dst, *a, **k)\n"
        "fs.copy = _copy\n"
    )
    res = _hooked_cli(hook, *_clean_args(bucket, ds))
    assert res.returncode == 0, res.stderr
    published = _objects(s3_server, bucket, "out")
    assert published[ds.clean_shard] == (ds.root / ds.clean_shard).read_bytes()
    _assert_contained(published, ds)
    verified = _cli("verify", f"s3://{bucket}/out")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_shard_replaced_after_its_check_is_indexed_again(
    s3_server: S3Server, cache: Path, tmp_path: Path
) -> None:
    """The clean stage checks the shard's ETag, then reads it. Replaced between the two (here: by a
    shard holding flagged rows), the read bytes were published with a manifest hash of those bytes,
    so verify passed a release with flagged rows. The tag must be checked again after the read."""
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=300, row_group_size=100)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    hook = _replace_with_flagged(bucket, ds) + (
        "from expunge.stages import clean_task\n"
        "_real = clean_task._confirm_source\n"
        "def _confirm(task, *a):\n"
        "    got = _real(task, *a)\n"
        f"    if not a and task.shard_name == {ds.clean_shard!r}:\n"
        "        _swap()\n"
        "    return got\n"
        "clean_task._confirm_source = _confirm\n"
    )
    res = _hooked_cli(hook, *_clean_args(bucket, ds))
    assert res.returncode == 0, res.stderr
    published = _objects(s3_server, bucket, "out")
    assert published[ds.clean_shard] != (ds.root / ds.clean_shard).read_bytes()  # the new object, cleaned
    _assert_contained(published, ds)
    verified = _cli("verify", f"s3://{bucket}/out")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize(("store", "out"), [("rel/store", "rel"), ("store", "store/out"), ("st", "st")])
def test_out_overlapping_the_store_is_refused(
    s3_server: S3Server, cache: Path, tmp_path: Path, store: str, out: str
) -> None:
    """Publishing deletes what the release does not hold: a store inside --out lost its lock and its
    files; a release inside the store was pulled into every run's copy of it."""
    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=200)
    bucket = s3_server.make_bucket()
    args = ["clean", str(ds.root), "--list", f"{ds.lists['iwf']}:url_md5"]
    res = _cli(*args, "--store", f"s3://{bucket}/{store}/", "--out", f"s3://{bucket}/{out}", "-q")
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the store" in lines[0] and "Traceback" not in res.stderr
    assert not [k for k in _objects(s3_server, bucket, out) if k != "lock.json"]  # nothing written


def test_foreign_objects_under_out_are_refused_never_deleted(
    s3_server: S3Server, cache: Path, tmp_path: Path
) -> None:
    """--out at a bucket's root (or any prefix holding someone's objects): publishing once deleted
    every object the release did not hold. A local --out refuses such files; so must a remote one."""
    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=200)
    bucket = s3_server.make_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="photos/keep.txt", Body=b"benign user bytes")
    args = ["clean", str(ds.root), "--list", f"{ds.lists['iwf']}:url_md5", "--store", str(tmp_path / "st")]
    res = _cli(*args, "--out", f"s3://{bucket}", "-q")
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "photos/keep.txt" in lines[0] and "Traceback" not in res.stderr
    client = s3_server.client()
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["photos/keep.txt"]
    # A release there before, rerun to a new release: its own stale objects are still swept.
    client.delete_object(Bucket=bucket, Key="photos/keep.txt")
    assert _cli(*args, "--out", f"s3://{bucket}/rel", "-q").returncode == 0
    client.put_object(Bucket=bucket, Key="rel/part-09999.parquet", Body=b"x")  # not listed: foreign
    again = _cli(*args, "--out", f"s3://{bucket}/rel", "-q")
    assert again.returncode == 2 and "part-09999.parquet" in again.stderr
    assert "rel/part-09999.parquet" in {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
