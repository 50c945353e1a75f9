"""webdataset tar shards on object storage: discovered with their companions, scanned and read through
ranged reads, indexed like local ones (moto's S3 server, over HTTP)."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.s3server import S3Server, s3_server, s3_session  # noqa: F401

from expunge.errors import ExpungeError
from expunge.formats import registry
from expunge.formats.tar_scan import RemoteArchive, iter_data, scan
from expunge.index.build import IndexTask, index_shard
from expunge.storage import put_bytes, put_file


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:  # noqa: F811 (the shared fixture, under a name tests can take)
    return s3_server


def _tar(path: Path, n: int, seed: int = 0) -> Path:
    """img2dataset-like samples: image bytes of varied sizes (some larger than a small read window),
    caption and json; every 5th sample has no image."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(n):
            key = f"{seed:04d}{i:05d}"
            members = [("txt", f"a mug, photo {i}".encode()), ("json", json.dumps({"key": key}).encode())]
            if i % 5 != 2:
                members.insert(0, ("jpg", b"\xff\xd8\xff\xe0" + rng.randbytes((0, 100, 700, 3000)[i % 4])))
            for ext, data in members:
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size, ti.mtime = len(data), 1_700_000_000
                tf.addfile(ti, io.BytesIO(data))
    return path


def _meta(path: Path, n: int, seed: int = 0) -> Path:
    keys = [f"{seed:04d}{i:05d}" for i in range(n)]
    urls = [f"https://img.photos.example/{seed}/{i}.jpg" for i in range(n)]
    pq.write_table(pa.table({"url": urls, "caption": [f"photo {i}" for i in range(n)], "key": keys}), path)
    return path


def _dataset(tmp_path: Path, base: str) -> Path:
    src = tmp_path / "src"
    for seed in (0, 1):
        _tar(src / f"{seed:05d}.tar", 12, seed)
        _meta(src / f"{seed:05d}.parquet", 12, seed)
        put_file(src / f"{seed:05d}.tar", f"{base}/{seed:05d}.tar")
        put_file(src / f"{seed:05d}.parquet", f"{base}/{seed:05d}.parquet")
    (src / "00000_stats.json").write_text("{}")
    put_file(src / "00000_stats.json", f"{base}/00000_stats.json")
    return src


def test_discover_remote_tars_with_companions(s3: S3Server, tmp_path: Path) -> None:
    base = f"s3://{s3.make_bucket()}/wds"
    _dataset(tmp_path, base)
    root, shards, fmt = registry.discover([base + "/"])
    assert (root, fmt) == (base, "webdataset")
    assert [(s.name, s.location, s.metadata, s.companions) for s in shards] == [
        ("00000.tar", f"{base}/00000.tar", f"{base}/00000.parquet", (f"{base}/00000_stats.json",)),
        ("00001.tar", f"{base}/00001.tar", f"{base}/00001.parquet", ()),
    ]


DEFAULT_WINDOW = RemoteArchive.WINDOW


@pytest.mark.parametrize("window", [DEFAULT_WINDOW, 1536])
def test_remote_scan_equals_local(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    monkeypatch.setattr(RemoteArchive, "WINDOW", window)  # small: members larger than the window too
    local = _tar(tmp_path / "a.tar", 30)
    url = f"s3://{s3.make_bucket()}/wds/a.tar"
    put_file(local, url)
    assert scan(url) == scan(str(local))
    with s3.recording() as requests:
        got = list(iter_data(url))
    assert got == list(iter_data(str(local)))
    gets = [r for r in requests if r.method == "GET"]
    if window == DEFAULT_WINDOW:  # the whole small shard in one or two ranged reads, not one per member
        assert len(gets) <= 4, len(gets)


def test_a_cut_remote_tar_is_one_line(s3: S3Server, tmp_path: Path) -> None:
    local = _tar(tmp_path / "a.tar", 6)
    url = f"s3://{s3.make_bucket()}/wds/a.tar"
    data = local.read_bytes()
    end = (len(data.rstrip(b"\0")) + 511) // 512 * 512
    put_bytes(url, data[:end])  # the last member whole, the end-of-archive marker gone
    with pytest.raises(ExpungeError) as info:
        scan(url)
    assert str(info.value).startswith(f"{url}:offset ") and "truncated tar" in str(info.value)


def test_remote_tar_index_equals_local(s3: S3Server, tmp_path: Path) -> None:
    base = f"s3://{s3.make_bucket()}/wds"
    src = _dataset(tmp_path, base)
    (tmp_path / "tmp").mkdir()
    _, local_shards, _ = registry.discover([str(src)])
    _, remote_shards, _ = registry.discover([base])
    results = []
    for label, shard in (("local", local_shards[0]), ("remote", remote_shards[0])):
        task = IndexTask(
            shard=shard,
            url_column="url",
            caption_column="caption",
            key_column="key",
            index_dir=str(tmp_path / label),
            tmp_dir=str(tmp_path / "tmp"),
            features=("url:canonical:sha1", "image:sha256"),
            rows_needed=True,
            known_sha256=None,
        )
        res = index_shard(task)
        # Tar and parquet: a hash of both objects' ETags, never mistakable for a SHA-256; locally the SHA.
        assert res.sha256.startswith("etag:") if label == "remote" else len(res.sha256) == 64
        results.append((res.rows, res.images, res.image_errors, res.quarantined))
    assert results[0] == results[1] and results[0][0] == 12
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert "samples.parquet" in names and sorted(p.name for p in (tmp_path / "remote").iterdir()) == names
    for name in names:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
