"""Indexing a parquet shard on object storage: the same index files as locally, an identity from one HEAD,
and only the URL column's pages read (moto's S3 server, over HTTP)."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.s3server import Request, S3Server, s3_server, s3_session  # noqa: F401

from expunge.errors import ExpungeError
from expunge.formats.base import Shard
from expunge.index import build
from expunge.index.build import IndexTask, fingerprint, index_shard, is_sha256, shard_identity
from expunge.storage import clear_cache, filesystem, parse, put_bytes, put_file, size
from expunge.storage.fs import ObjectStat

FEATURES = ("url:canonical:sha1", "url:raw:md5", "domain:sha256", "caption:nfc:sha256")


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:  # noqa: F811 (the shared fixture, under a name tests can take)
    return s3_server


def _laion_like(rows: int) -> pa.Table:
    """LAION-shaped metadata: URL, caption, similarity and a CLIP-like incompressible embedding column,
    which (as in the real thing) is most of the shard's bytes."""
    return pa.table(
        {
            "url": [
                None if i == 3 else f"https://img{i % 7}.photos.example/a/{i:07d}/view.jpg"
                for i in range(rows)
            ],
            "caption": [
                f"a {('red', 'blue', 'green')[i % 3]} mug on a table, photo {i}" for i in range(rows)
            ],
            "similarity": pa.array([(i % 100) / 100 for i in range(rows)], pa.float64()),
            "embedding": [hashlib.shake_128(f"e-{i}".encode()).digest(256) for i in range(rows)],
        }
    )


def _task(tmp_path: Path, location: str, label: str) -> IndexTask:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return IndexTask(
        shard=Shard("part-0.parquet", "parquet", location, metadata=location),
        url_column="url",
        caption_column="caption",
        index_dir=str(tmp_path / label),
        tmp_dir=str(tmp_path / "tmp"),
        features=FEATURES,
        rows_needed=True,
        known_sha256=None,
    )


def _upload(s3: S3Server, tmp_path: Path, rows: int = 2000) -> tuple[Path, str]:
    local = tmp_path / "part-0.parquet"
    pq.write_table(_laion_like(rows), local, row_group_size=500)
    url = f"s3://{s3.make_bucket()}/laion/part-0.parquet"
    put_file(local, url)
    return local, url


def _etag(s3: S3Server, url: str) -> str:
    bucket, key = parse(url).path.split("/", 1)
    return str(s3.client().head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def _served_bytes(requests: list[Request], key: str, object_size: int) -> int:
    """Bytes the server sent for GETs of ``key``, from the Range headers it received."""
    total = 0
    for r in requests:
        if r.method != "GET" or not r.url.split("?")[0].endswith(key):
            continue
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", (r.header("Range") or "bytes=0-").strip())
        assert m, r.header("Range")
        last = min(int(m.group(2)) if m.group(2) else object_size - 1, object_size - 1)
        total += max(0, last - int(m.group(1)) + 1)
    return total


def test_remote_index_equals_local(s3: S3Server, tmp_path: Path) -> None:
    local, url = _upload(s3, tmp_path)
    here = index_shard(_task(tmp_path, str(local), "local"))
    there = index_shard(_task(tmp_path, url, "remote"))
    files = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert "rows.parquet" in files and len(files) == 1 + len(FEATURES)
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == files
    for name in files:  # byte for byte: the same values, written the same way
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert (there.rows, there.quarantined, there.size) == (here.rows, here.quarantined, here.size)
    assert here.rows == 2000 and here.quarantined == {"null_url": 1}
    # Identity: the local shard's SHA-256; the remote one's ETag and size, never mistakable for a SHA-256.
    assert here.sha256 == hashlib.sha256(local.read_bytes()).hexdigest() and is_sha256(here.sha256)
    assert there.sha256 == f"etag:{_etag(s3, url)}:{local.stat().st_size}"
    assert not is_sha256(there.sha256)
    assert shard_identity([url]) == there.sha256


def test_index_reads_the_url_column_not_the_object(s3: S3Server, tmp_path: Path) -> None:
    local, url = _upload(s3, tmp_path, rows=8000)
    object_size = size(url)
    task = replace(_task(tmp_path, url, "remote"), features=("url:canonical:sha1",))
    with s3.recording() as requests:
        res = index_shard(task)
    assert res.rows == 8000
    read = _served_bytes(requests, "laion/part-0.parquet", object_size)
    meta = pq.ParquetFile(local).metadata
    url_chunks = sum(
        meta.row_group(g).column(c).total_compressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema == "url"
    )
    heads = [r for r in requests if r.method == "HEAD"]
    print(
        f"index_shard read {read} of {object_size} bytes ({read / object_size:.1%}); URL chunks {url_chunks}"
    )
    assert url_chunks <= read < object_size / 4
    assert len(heads) <= 4  # identity before and after, Arrow's open: no listing, no full GET
    # An unchanged shard with nothing new to compute: recognised by one HEAD, not one byte read.
    again = replace(task, features=(), rows_needed=False, known_sha256=res.sha256)
    with s3.recording() as requests:
        skipped = index_shard(again)
    assert not skipped.content_changed
    assert not [r for r in requests if r.method == "GET" and "part-0.parquet" in r.url]


def test_fingerprint_follows_the_etag(s3: S3Server, tmp_path: Path) -> None:
    local, url = _upload(s3, tmp_path, rows=100)
    first = fingerprint([url])
    assert first == fingerprint([url]) and first[0] == local.stat().st_size and first[1] > 0
    identity = shard_identity([url])
    # Same size, other bytes: the ETag changes, so do the fingerprint and the identity.
    data = bytearray(local.read_bytes())
    data[10] ^= 1
    put_bytes(url, bytes(data))
    assert fingerprint([url])[0] == first[0] and fingerprint([url])[1] != first[1]
    assert shard_identity([url]) != identity
    # The same bytes written again: the same identity (an ETag of a single PUT is its content's MD5).
    put_file(local, url)
    assert shard_identity([url]) == identity and fingerprint([url]) == first


def test_a_shard_replaced_while_indexed_is_refused(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = _upload(s3, tmp_path, rows=100)
    real = build.storage_stat
    calls: list[str] = []

    def replaced_after_first_look(loc: str) -> ObjectStat:
        st = real(loc)
        calls.append(loc)
        return st if len(calls) == 1 else st._replace(tag="another")

    monkeypatch.setattr(build, "storage_stat", replaced_after_first_look)
    with pytest.raises(ExpungeError) as info:
        index_shard(_task(tmp_path, url, "remote"))
    assert str(info.value) == "part-0.parquet: shard changed while it was being indexed; run again"


def test_a_stopped_server_is_one_line(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_cache()
    _, url = _upload(s3, tmp_path, rows=100)
    s3.stop()
    for call in (lambda: index_shard(_task(tmp_path, url, "remote")), lambda: fingerprint([url])):
        with pytest.raises(ExpungeError) as info:
            call()
        assert str(info.value) == f"{url}: cannot reach the storage endpoint"


def test_missing_bucket_and_object(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    for url, phrase in (
        ("s3://no-such-bucket-expunge-idx/laion/part-0.parquet", "bucket not found"),
        (f"s3://{bucket}/laion/absent.parquet", "not found"),
    ):
        with pytest.raises(ExpungeError) as info:
            index_shard(_task(tmp_path, url, "remote"))
        assert str(info.value) == f"{url}: {phrase}"


def test_a_backend_without_etags_gets_the_real_sha256(tmp_path: Path) -> None:
    local = tmp_path / "part-0.parquet"
    pq.write_table(_laion_like(300), local, row_group_size=100)
    url = f"memory://expunge-remote-index-{time.monotonic_ns()}/laion/part-0.parquet"
    put_file(local, url)
    try:
        here = index_shard(_task(tmp_path, str(local), "local"))
        there = index_shard(_task(tmp_path, url, "remote"))
        assert there.sha256 == here.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
        for name in sorted(p.name for p in (tmp_path / "local").iterdir()):
            assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
        assert fingerprint([url]) == fingerprint([url])
    finally:
        filesystem(parse(url)).rm(parse(url).parent.parent.url, recursive=True)
