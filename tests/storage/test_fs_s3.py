"""The storage functions against a real S3 API (moto in server mode, over HTTP on loopback)."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.storage import (
    clear_cache,
    copy,
    create_if_absent,
    delete,
    exists,
    filesystem,
    iter_chunks,
    listdir,
    open_input,
    parse,
    put_bytes,
    put_file,
    read_bytes,
    size,
    storage_errors,
    walk,
)
from tests.s3server import Request, S3Server


def _laion_like(rows: int, seed: int = 0) -> pa.Table:
    """Benign LAION-shaped metadata: the URL column is a minority of the bytes, as in the real thing."""
    return pa.table(
        {
            "URL": [f"https://img{i % 7}.photos.example/{seed}/{i:07d}/view.jpg" for i in range(rows)],
            "TEXT": [
                f"a {('red', 'blue', 'green')[i % 3]} mug on a wooden table, photo {i} " * 3
                for i in range(rows)
            ],
            "WIDTH": pa.array([512 + i % 9 for i in range(rows)], pa.int32()),
            "HEIGHT": pa.array([384 + i % 5 for i in range(rows)], pa.int32()),
            "similarity": pa.array([(i % 100) / 100 for i in range(rows)], pa.float64()),
            "hash": pa.array([(i * 2654435761) % (1 << 63) for i in range(rows)], pa.int64()),
            # A CLIP-like embedding: incompressible bytes, the bulk of the shard.
            "EMB": [hashlib.shake_128(f"{seed}-{i}".encode()).digest(128) for i in range(rows)],
        }
    )


def _served_bytes(requests: list[Request], key: str, object_size: int) -> tuple[int, int]:
    """(bytes the server sent for GETs of ``key``, number of GETs), from the Range headers it received."""
    total = gets = 0
    for r in requests:
        if r.method != "GET" or not r.url.split("?")[0].endswith(key):
            continue
        gets += 1
        rng = r.header("Range")
        if rng is None:
            total += object_size
            continue
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
        assert m, rng
        first = int(m.group(1))
        last = min(int(m.group(2)) if m.group(2) else object_size - 1, object_size - 1)
        total += max(0, last - first + 1)
    return total, gets


def test_round_trip(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    loc = parse(f"s3://{bucket}/store/a.bin")
    assert not exists(loc)
    put_bytes(loc, b"hello")
    assert exists(loc) and size(loc) == 5 and read_bytes(loc) == b"hello"
    assert exists(loc.parent)  # a prefix with objects under it
    assert b"".join(iter_chunks(loc, chunk=2)) == b"hello"
    (tmp_path / "f.bin").write_bytes(b"z" * 3000)
    put_file(tmp_path / "f.bin", loc.parent.join("f.bin"))
    assert read_bytes(loc.parent.join("f.bin")) == b"z" * 3000
    delete(loc)
    delete(loc)
    assert not exists(loc)


def test_walk_and_listdir(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    root = parse(f"s3://{bucket}/ds")
    keys = ["ds/a/1.parquet", "ds/a/b/2.parquet", "ds/c.parquet", "ds/.expunge/x", "ds/_temporary/0/y"]
    keys += ["ds/a/.expunge-tmp-z", "ds-other/3.parquet", "ds2.parquet"]
    for key in keys:
        put_bytes(parse(f"s3://{bucket}/{key}"), b"1")
    assert [x.url for x in walk(root)] == [
        f"s3://{bucket}/ds/a/1.parquet",
        f"s3://{bucket}/ds/a/b/2.parquet",
        f"s3://{bucket}/ds/c.parquet",
    ]
    assert [x.name for x in listdir(root)] == ["c.parquet"]
    assert walk(root.join("c.parquet")) == [root.join("c.parquet")]
    assert walk(root.join("nothing-here")) == []
    # Written by another client after a first listing: seen at once (no stale listing cache).
    s3_server.client().put_object(Bucket=bucket, Key="ds/d.parquet", Body=b"2")
    assert root.join("d.parquet") in walk(root) and exists(root.join("d.parquet"))


def test_open_input_reads_only_the_url_column(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    local = tmp_path / "part-00000.parquet"
    table = _laion_like(20_000)
    pq.write_table(table, local, row_group_size=5_000)
    loc = parse(f"s3://{bucket}/laion/part-00000.parquet")
    put_file(local, loc)
    object_size = size(loc)
    with s3_server.recording() as requests, open_input(loc) as fh:
        urls = pq.ParquetFile(fh).read(columns=["URL"])
    assert urls.column("URL").equals(table.column("URL"))
    read, gets = _served_bytes(requests, "laion/part-00000.parquet", object_size)
    meta = pq.ParquetFile(local).metadata
    url_chunks = sum(
        meta.row_group(g).column(c).total_compressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema == "URL"
    )
    print(f"bytes read for the URL column: {read} of {object_size} ({read / object_size:.1%}), {gets} GETs;")
    print(f"URL column chunks {url_chunks}, footer {meta.serialized_size}")
    assert url_chunks <= read < object_size / 4
    # Arrow reads the footer with a tail read, then each chunk; nothing like a full download.
    assert read <= url_chunks + meta.serialized_size + 64 * 1024 + 8


def test_copy_is_server_side(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    other = s3_server.make_bucket()
    payload = bytes(range(256)) * 8192  # 2 MiB
    src = parse(f"s3://{bucket}/ds/part-1.tar")
    put_bytes(src, payload)
    dst = parse(f"s3://{other}/release/part-1.tar")
    copy(src, src)  # onto itself: nothing to do (S3 would refuse the request)
    assert read_bytes(src) == payload
    with s3_server.recording() as requests:
        copy(src, dst)
    assert read_bytes(dst) == payload
    copies = [r for r in requests if r.header("x-amz-copy-source")]
    assert len(copies) == 1 and copies[0].method == "PUT"
    assert not [r for r in requests if r.method == "GET" and "part-1.tar" in r.url]  # never downloaded
    assert sum(len(r.body) for r in requests) < 10_000  # never uploaded either


def test_copy_across_stores(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    (tmp_path / "a.bin").write_bytes(b"abc" * 100)
    copy(tmp_path / "a.bin", f"s3://{bucket}/x/a.bin")
    copy(f"s3://{bucket}/x/a.bin", tmp_path / "back" / "a.bin")
    assert (tmp_path / "back" / "a.bin").read_bytes() == b"abc" * 100
    copy(f"s3://{bucket}/x/a.bin", "memory://expunge-s3-test/a.bin")
    assert read_bytes("memory://expunge-s3-test/a.bin") == b"abc" * 100
    copy("memory://expunge-s3-test/a.bin", f"s3://{bucket}/x/b.bin")
    assert read_bytes(f"s3://{bucket}/x/b.bin") == b"abc" * 100
    filesystem(parse("memory://expunge-s3-test")).rm("memory://expunge-s3-test", recursive=True)


def test_create_if_absent(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    lock = parse(f"s3://{bucket}/store/LOCK")
    assert create_if_absent(lock, b"run-1") is True
    assert create_if_absent(lock, b"run-2") is False
    assert read_bytes(lock) == b"run-1"
    delete(lock)
    assert create_if_absent(lock, b"run-3") is True


# --- failures: one line, the URL without credentials, nothing else -------------------------------


def _one_line(exc: ExpungeError, url: str, phrase: str) -> None:
    text = str(exc)
    assert text == f"{url}: {phrase}"
    assert "\n" not in text and "testing" not in text and "Traceback" not in text
    assert exc.__cause__ is None and exc.__suppress_context__


def test_missing_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    url = "s3://no-such-bucket-expunge/ds/part-0.parquet"
    for call in (
        lambda: read_bytes(url),
        lambda: open_input(url),
        lambda: put_bytes(url, b"x"),
        lambda: walk("s3://no-such-bucket-expunge/ds/part-0.parquet"),
        lambda: create_if_absent(url, b"x"),
        lambda: size(url),
    ):
        with pytest.raises(ExpungeError) as info:
            call()
        _one_line(info.value, url, "bucket not found")
    assert exists(url) is False


def test_missing_key(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/ds/absent.parquet"
    for call in (lambda: read_bytes(url), lambda: open_input(url), lambda: size(url)):
        with pytest.raises(ExpungeError) as info:
            call()
        _one_line(info.value, url, "not found")


def test_unknown_credentials(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/k"
    put_bytes(url, b"x")
    with s3_server.enforce_auth():
        for call in (
            lambda: read_bytes(url),
            lambda: open_input(url),
            lambda: exists(url),
            lambda: walk(url),
        ):
            with pytest.raises(ExpungeError) as info:
                call()
            _one_line(info.value, url, "access denied (check the credentials)")


def test_denied_and_wrong_secret(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/k"
    put_bytes(url, b"x")
    iam = s3_server.client(service="iam")
    iam.create_user(UserName=f"reader-{bucket}")
    key = iam.create_access_key(UserName=f"reader-{bucket}")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    for secret in (key["SecretAccessKey"], "wrong-" + key["SecretAccessKey"]):  # no policy; bad signature
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        clear_cache()
        with s3_server.enforce_auth():
            for call in (lambda: read_bytes(url), lambda: open_input(url), lambda: put_bytes(url, b"y")):
                with pytest.raises(ExpungeError) as info:
                    call()
                _one_line(info.value, url, "access denied (check the credentials)")
                assert secret not in str(info.value) and key["AccessKeyId"] not in str(info.value)


def test_stopped_server(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore would retry for ~10 s; one attempt is enough here
    clear_cache()
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/ds/part-0.parquet"
    put_bytes(url, b"x")
    s3_server.stop()
    started = time.monotonic()
    for call in (
        lambda: read_bytes(url),
        lambda: put_bytes(url, b"y"),
        lambda: exists(url),
        lambda: walk(url),
        lambda: create_if_absent(url, b"z"),
        lambda: copy(url, f"s3://{bucket}/ds/copy.parquet"),
    ):
        with pytest.raises(ExpungeError) as info:
            call()
        _one_line(info.value, url, "cannot reach the storage endpoint")
    assert time.monotonic() - started < 5
    # A restarted server is empty; with the caches dropped the next run talks to it afresh.
    s3_server.start()
    clear_cache()
    bucket = s3_server.make_bucket(bucket)
    put_bytes(url, b"again")
    assert read_bytes(url) == b"again"


def test_stopped_server_arrow(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow's own S3 client: an open after the stop, and a read through a file opened before it."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_cache()
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/ds/part-0.parquet"
    put_bytes(url, b"x" * 100)
    opened = open_input(url)
    s3_server.stop()
    with pytest.raises(ExpungeError) as info, storage_errors(url):
        opened.read()  # a read after the open: the caller wraps it, and gets the same one line
    _one_line(info.value, url, "cannot reach the storage endpoint")
    with pytest.raises(ExpungeError) as info:
        open_input(url)
    _one_line(info.value, url, "cannot reach the storage endpoint")


def test_writes_are_one_request(s3_server: S3Server, tmp_path: Path) -> None:
    """A write is one PUT carrying the whole body: there is no moment when a part of it is readable."""
    bucket = s3_server.make_bucket()
    (tmp_path / "f.bin").write_bytes(b"f" * 5000)
    for write in (
        lambda: put_bytes(f"s3://{bucket}/a.bin", b"a" * 5000),
        lambda: put_file(tmp_path / "f.bin", f"s3://{bucket}/f.bin"),
        lambda: create_if_absent(f"s3://{bucket}/LOCK", b"l" * 5000),
    ):
        with s3_server.recording() as requests:
            write()
        writes = [r for r in requests if r.method in ("PUT", "POST")]
        assert len(writes) == 1 and len(writes[0].body) >= 5000, [(r.method, r.url) for r in requests]
    assert [r for r in requests if r.header("If-None-Match") == "*"]  # the conditional write, on the wire
