"""webdataset / img2dataset tar shards: discovery, streaming scans, byte-faithful rewrites, companions,
and every cut or corrupt shard reported as one ExpungeError naming the file and the byte offset."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.formats.members import IMAGE_EXTS
from expunge.formats.tar import normalize_name, split_key
from expunge.formats.tar_rewrite import rewrite_tar
from expunge.formats.tar_scan import Member, iter_images, iter_members, sample_keys, scan
from expunge.formats.webdataset import TarShard, discover_tars, rewrite_companions

WORDS = ("apple", "river", "stone", "cloud", "maple", "harbor", "lantern", "meadow")
FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}

Sample = tuple[str, list[tuple[str, bytes]]]  # key, [(ext, data)] in tar order


def _png(rng: random.Random, n: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + rng.randbytes(n)


def _jpeg(rng: random.Random, n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + rng.randbytes(n) + b"\xff\xd9"


def _samples(n: int, seed: int = 0, prefix: str = "") -> list[Sample]:
    """img2dataset-like samples: image, caption, metadata; every 7th has no image (failed resize kept)."""
    rng = random.Random(seed)
    out: list[Sample] = []
    for i in range(n):
        key = f"{prefix}{i:09d}"
        members: list[tuple[str, bytes]] = []
        if i % 7 != 3:
            size = (0, 1, 507, 512, 1013, 2500)[i % 6]  # block-exact and empty images too
            ext = ("jpg", "png", "webp")[i % 3]
            members.append((ext, _png(rng, size) if ext == "png" else _jpeg(rng, size)))
        members.append(("txt", " ".join(rng.choice(WORDS) for _ in range(4)).encode()))
        members.append(("json", json.dumps({"key": key, "width": 64, "height": 48}).encode()))
        out.append((key, members))
    return out


def _write_tar(path: Path, samples: list[Sample], fmt: int = tarfile.PAX_FORMAT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as tf:
        for i, (key, members) in enumerate(samples):
            for ext, data in members:
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(data)
                ti.mtime = 1_700_000_000
                ti.mode = 0o644
                ti.uname, ti.gname = "wds", "wds"
                if fmt == tarfile.PAX_FORMAT and i % 4 == 1:
                    ti.pax_headers = {"comment": "neutral"}  # forces a PAX 'x' header
                tf.addfile(ti, io.BytesIO(data))
    return path


def _tar_members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return tf.getmembers()


def _raw(data: bytes, ti: tarfile.TarInfo) -> bytes:
    """An entry's bytes as stored: extended headers, header, data and padding."""
    end = ti.offset_data + (ti.size + 511) // 512 * 512 if ti.isreg() else ti.offset_data
    return data[ti.offset : end]


def _contents(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        out: dict[str, bytes] = {}
        for ti in tf.getmembers():
            fh = tf.extractfile(ti) if ti.isreg() else None
            out[ti.name] = fh.read() if fh is not None else b""
        return out


def _error(fn: Callable[[], Any]) -> ExpungeError:
    with pytest.raises(ExpungeError) as info:
        fn()
    return info.value


def _shard(tmp_path: Path, n: int = 21, fmt: int = tarfile.PAX_FORMAT) -> tuple[TarShard, list[Sample]]:
    """A tar with companion parquet (every sample plus failed rows) and an img2dataset stats file."""
    samples = _samples(n)
    tar = _write_tar(tmp_path / "in" / "00000.tar", samples, fmt)
    keys = [k for k, _ in samples]
    failed = [f"{n + i:09d}" for i in range(4)]
    rows = len(keys) + len(failed)
    status = ["success"] * len(keys) + ["failed_to_download"] * 3 + ["failed_to_resize"]
    table = pa.table(
        {
            "url": [f"http://img{i}.example/{i}.jpg" for i in range(rows)],
            "caption": [WORDS[i % len(WORDS)] for i in range(rows)],
            "key": keys + failed,
            "status": status,
            "error_message": [None] * len(keys) + ["HTTP Error 404"] * 3 + ["image too small"],
            "width": pa.array([64] * rows, pa.int32()),
        }
    ).replace_schema_metadata({"origin": "test shard"})
    pq.write_table(table, tar.with_suffix(".parquet"), row_group_size=10, compression="zstd")
    stats = {
        "count": rows,
        "successes": len(keys),
        "failed_to_download": 3,
        "failed_to_resize": 1,
        "duration": 12.5,
        "start_time": 1_700_000_000.0,
        "end_time": 1_700_000_012.5,
        "status_dict": {"success": len(keys), "HTTP Error 404": 3, "image too small": 1},
    }
    stats_path = tar.parent / "00000_stats.json"
    stats_path.write_text(json.dumps(stats, indent=4))
    shard = TarShard("00000.tar", str(tar), str(tar.with_suffix(".parquet")), str(stats_path))
    return shard, samples


# ------------------------------------------------------------------------------------------------
# discovery
# ------------------------------------------------------------------------------------------------


def test_discover_folder_recursive_sorted_with_companions(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for rel in ("00001.tar", "00000.tar", "b/00002.tar", "a/00003.tar", ".hidden/x.tar", "a/.tmp.tar"):
        _write_tar(root / rel, _samples(1))
    (root / "_partial.tar").write_bytes(b"")
    (root / "00000.parquet").write_bytes(b"x")
    (root / "00000_stats.json").write_text("{}")
    (root / "a" / "00003_stats.json").write_text("{}")
    (root / "notes.txt").write_text("neutral words")
    got_root, shards = discover_tars([str(root)])
    assert got_root == str(root)
    assert [s.name for s in shards] == ["00000.tar", "00001.tar", "a/00003.tar", "b/00002.tar"]
    first = shards[0]
    assert first.path == str(root / "00000.tar") and os.path.isabs(first.path)
    assert first.parquet == str(root / "00000.parquet")
    assert first.stats == str(root / "00000_stats.json")
    assert (shards[1].parquet, shards[1].stats) == (None, None)
    assert (shards[2].parquet, shards[2].stats) == (None, str(root / "a" / "00003_stats.json"))
    assert discover_tars([f"file://{root}/"])[1] == shards


def test_discover_glob_files_and_errors(tmp_path: Path) -> None:
    for rel in ("a/1.tar", "a/2.tar", "b/3.tar", "b/c/4.tar"):
        _write_tar(tmp_path / rel, _samples(1))
    (tmp_path / "a" / "1.parquet").write_bytes(b"x")
    root, shards = discover_tars([str(tmp_path / "*" / "*")])
    assert root == str(tmp_path)
    assert [s.name for s in shards] == ["a/1.tar", "a/2.tar", "b/3.tar"]  # the parquet is no shard
    root, shards = discover_tars([str(tmp_path / "b" / "c" / "4.tar"), str(tmp_path / "a" / "1.tar")])
    assert (root, [s.name for s in shards]) == (str(tmp_path), ["a/1.tar", "b/c/4.tar"])
    missing = str(tmp_path / "absent")
    err = _error(lambda: discover_tars([missing]))
    assert err.path == missing and "not found" in str(err)
    with pytest.raises(ExpungeError, match="no tar shards"):
        discover_tars([str(tmp_path / "*.nothing")])


# ------------------------------------------------------------------------------------------------
# members, keys, images
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_members_keys_and_images_match_tarfile(tmp_path: Path, fmt: int) -> None:
    samples = _samples(30)
    path = _write_tar(tmp_path / "s.tar", samples, fmt)
    infos = _tar_members(path)
    members = list(iter_members(str(path)))
    assert [(m.name, m.offset_data, m.size) for m in members] == [
        (ti.name, ti.offset_data, ti.size) for ti in infos
    ]
    assert members[0] == Member("000000000.jpg", "000000000", "jpg", infos[0].offset_data, infos[0].size)
    data = path.read_bytes()
    expected = {f"{k}.{e}": b for k, ms in samples for e, b in ms}
    for m in members:
        assert data[m.offset_data : m.offset_data + m.size] == expected[m.name]
    keys = [k for k, _ in samples]
    assert sample_keys(str(path)) == keys  # samples without an image are still samples
    images = list(iter_images(str(path)))  # every member of every sample, not only images
    assert images == [(i, k, b) for i, (k, ms) in enumerate(samples) for _, b in ms]
    assert all(i == keys.index(k) for i, k, _ in images)
    assert [(m.sample, m.key, m.ext) for m in scan(str(path)).members] == [
        (i, k, e) for i, (k, ms) in enumerate(samples) for e, _ in ms
    ]


def test_iter_images_yields_every_member_of_every_sample(tmp_path: Path) -> None:
    rng = random.Random(3)
    a, b, c, d = (rng.randbytes(40 + i) for i in range(4))
    samples: list[Sample] = [
        ("k0", [("txt", b"apple"), ("JPG", a), ("seg.png", b)]),
        ("k1", [("json", b"{}")]),  # no image: still a sample, its bytes still hashed
        ("k2", [("seg.png", c), ("webp", d), ("jpg.bak", a)]),
        ("k3", [("cls", b"3"), ("tiff", d), ("heic", c)]),
    ]
    path = str(_write_tar(tmp_path / "s.tar", samples))
    assert list(iter_images(path)) == [(i, k, data) for i, (k, ms) in enumerate(samples) for _, data in ms]
    assert sample_keys(path) == ["k0", "k1", "k2", "k3"]
    assert IMAGE_EXTS[0] == "jpg"


def test_keys_follow_webdataset(tmp_path: Path) -> None:
    assert split_key("a.b/000001.jpg") == ("a.b/000001", "jpg")
    assert split_key("x/y/000001.seg.png") == ("x/y/000001", "seg.png")
    assert split_key("./000001.txt") == ("./000001", "txt")
    for skipped in ("README", "a.b/noext", "__index__", "__meta__/000001.jpg"):
        assert split_key(skipped) is None
    rng = random.Random(5)
    samples: list[Sample] = [
        ("a", [("jpg", rng.randbytes(9))]),
        ("b", [("jpg", b"x")]),
        ("a", [("txt", b"y")]),
    ]
    path = _write_tar(tmp_path / "s.tar", samples)
    with tarfile.open(path, "a") as tf:
        for name, data in (("README", b"river"), ("__index__", b"0")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("extras")
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
    # A key that recurs later is one sample, listed where it first appears; non-samples are skipped.
    assert sample_keys(str(path)) == ["a", "b"]
    assert [m.name for m in iter_members(str(path))] == ["a.jpg", "b.jpg", "a.txt"]
    out = tmp_path / "o.tar"
    assert rewrite_tar(str(path), out, {"a"}) == (1, 1)
    assert [ti.name for ti in _tar_members(out)] == ["b.jpg", "README", "__index__", "extras"]


def test_names_are_compared_as_they_extract_and_every_data_entry_is_assigned(tmp_path: Path) -> None:
    assert [normalize_name(n) for n in ("./a.jpg", "/a.jpg", "a//b/./c.jpg", "../a.jpg", ".")] == [
        "a.jpg", "a.jpg", "a/b/c.jpg", "../a.jpg", ""
    ]  # fmt: skip
    samples: list[Sample] = [("./k0", [("jpg", b"a"), ("txt", b"b")]), ("k1", [("json", b"{}")])]
    path = _write_tar(tmp_path / "s.tar", samples)
    with tarfile.open(path, "a") as tf:
        for name in ("k1", "README", ".hidden.jpg"):  # k1 joins sample k1; the others belong to none
            ti = tarfile.TarInfo(name)
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
    layout = scan(str(path))
    assert layout.keys == ["k0", "k1"] == sample_keys(str(path))
    assert [(m.sample, m.key, m.ext) for m in layout.members] == [
        (0, "k0", "jpg"), (0, "k0", "txt"), (1, "k1", "json"), (1, "k1", ""),
        (-1, None, "README"), (-1, None, ""),
    ]  # fmt: skip
    out = tmp_path / "o.tar"
    rewrite_tar(str(path), out, {"k1"})
    assert [ti.name for ti in _tar_members(out)] == ["./k0.jpg", "./k0.txt", "README", ".hidden.jpg"]


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_long_names_and_dotted_directories(tmp_path: Path, fmt: int) -> None:
    deep = "part.v1/" + "/".join(f"dir.{i:02d}" for i in range(14))  # > 100 chars: LongLink / PAX / prefix
    assert len(deep) > 100 and (fmt != tarfile.USTAR_FORMAT or len(deep) < 155)
    samples = [(f"{deep}/{k}", ms) for k, ms in _samples(6)] + [(f"a.b/{k}", ms) for k, ms in _samples(3)]
    path = _write_tar(tmp_path / "s.tar", samples, fmt)
    raw = path.read_bytes()
    if fmt == tarfile.GNU_FORMAT:
        assert b"././@LongLink" in raw
    keys = [k for k, _ in samples]
    assert sample_keys(str(path)) == keys
    assert keys[-1] == "a.b/000000002"
    assert [m.name for m in iter_members(str(path))] == [ti.name for ti in _tar_members(path)]
    out = tmp_path / "o.tar"
    drop = {keys[1], keys[-1]}
    assert rewrite_tar(str(path), out, drop) == (len(keys) - 2, 2)
    assert sample_keys(str(out)) == [k for k in keys if k not in drop]
    assert not [ti.name for ti in _tar_members(out) if split_key(ti.name)[0] in drop]  # type: ignore[index]
    src = {ti.name: ti for ti in _tar_members(path)}
    for ti in _tar_members(out):
        assert _raw(out.read_bytes(), ti) == _raw(raw, src[ti.name])


def test_pax_size_record_overrides_header(tmp_path: Path) -> None:
    """PAX ``size`` wins over the ustar size field (how > 8 GiB members are written)."""
    data = b"lantern" * 100
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("000000000.jpg")
        ti.size = len(data)
        ti.pax_headers = {"size": str(len(data))}
        tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("000000001.txt")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"maple"))
    raw = bytearray(buf.getvalue())
    member = _tar_members_bytes(bytes(raw))[0]
    hdr = member.offset_data - 512
    raw[hdr + 124 : hdr + 136] = b"00000000000\x00"  # header says 0 bytes
    _fix_checksum(raw, hdr)
    path = tmp_path / "s.tar"
    path.write_bytes(bytes(raw))
    assert [(m.name, m.size) for m in iter_members(str(path))] == [
        ("000000000.jpg", len(data)),
        ("000000001.txt", 5),
    ]
    assert list(iter_images(str(path))) == [(0, "000000000", data), (1, "000000001", b"maple")]


def _tar_members_bytes(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def _fix_checksum(raw: bytearray, hdr: int) -> None:
    block = raw[hdr : hdr + 512]
    block[148:156] = b" " * 8
    raw[hdr + 148 : hdr + 156] = b"%06o\x00 " % sum(block)


# ------------------------------------------------------------------------------------------------
# rewrite_tar
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_rewrite_drops_whole_samples_and_keeps_the_rest_byte_identical(tmp_path: Path, fmt: int) -> None:
    samples = _samples(40, seed=1)
    path = _write_tar(tmp_path / "s.tar", samples, fmt)
    keys = [k for k, _ in samples]
    drop = {keys[0], keys[3], keys[4], keys[17], keys[39], "not-in-this-shard"}
    out = tmp_path / "o.tar"
    assert rewrite_tar(str(path), out, drop) == (35, 5)
    src_raw, out_raw = path.read_bytes(), out.read_bytes()
    src = _tar_members(path)
    kept = [ti for ti in src if split_key(ti.name) and split_key(ti.name)[0] not in drop]  # type: ignore[index]
    got = _tar_members(out)
    assert [ti.name for ti in got] == [ti.name for ti in kept]  # order kept, every dropped member gone
    for a, b in zip(kept, got, strict=True):
        assert _raw(out_raw, b) == _raw(src_raw, a)  # headers (extended ones too), data, padding
        assert out_raw[b.offset : b.offset_data] == src_raw[a.offset : a.offset_data]
    expected = {f"{k}.{e}": d for k, ms in samples for e, d in ms if k not in drop}
    assert _contents(out) == expected
    assert len(out_raw) % 10240 == 0 and out_raw.endswith(bytes(1024))  # tarfile's record padding
    assert sample_keys(str(out)) == [k for k in keys if k not in drop]


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_rewrite_with_nothing_dropped_is_byte_identical(tmp_path: Path, fmt: int) -> None:
    samples = _samples(25, seed=2)
    path = _write_tar(tmp_path / "s.tar", samples, fmt)
    raw = path.read_bytes()
    body = len(raw) - len(raw.rstrip(b"\x00"))
    variants = {
        "tarfile": raw,
        "two zero blocks, no record padding": raw[: len(raw) - body] + bytes(-(len(raw) - body) % 512 + 1024),
        "garbage after the marker": raw + b"\x01neutral trailing bytes",
        "three zero blocks": raw[: len(raw) - body] + bytes(-(len(raw) - body) % 512 + 1536),
    }
    for label, data in variants.items():
        src = tmp_path / "v.tar"
        src.write_bytes(data)
        out = tmp_path / "o.tar"
        assert rewrite_tar(str(src), out, set()) == (25, 0), label
        assert out.read_bytes() == data, label
        assert rewrite_tar(str(src), out, frozenset({"absent"})) == (25, 0), label
        assert out.read_bytes() == data, label


def test_rewrite_trailer_follows_the_source(tmp_path: Path) -> None:
    samples = _samples(12, seed=4)
    path = _write_tar(tmp_path / "s.tar", samples)
    raw = path.read_bytes()
    members = _tar_members(path)
    last = members[-1]
    end = last.offset_data + (last.size + 511) // 512 * 512
    drop = {samples[2][0]}
    # Without record padding in the source, the output ends with exactly two zero blocks.
    bare = tmp_path / "bare.tar"
    bare.write_bytes(raw[:end] + bytes(1024))
    out = tmp_path / "o.tar"
    rewrite_tar(str(bare), out, drop)
    got = out.read_bytes()
    last_out = _tar_members(out)[-1]
    assert len(got) == last_out.offset_data + (last_out.size + 511) // 512 * 512 + 1024
    # Bytes after the end-of-archive marker are carried over verbatim.
    tail = tmp_path / "tail.tar"
    tail.write_bytes(raw[:end] + bytes(1024) + b"\x07neutral")
    rewrite_tar(str(tail), out, drop)
    assert out.read_bytes().endswith(bytes(1024) + b"\x07neutral")
    assert [ti.name for ti in _tar_members(out)] == [
        ti.name for ti in members if not ti.name.startswith(samples[2][0])
    ]


def test_rewrite_dropping_everything_gives_a_valid_empty_tar(tmp_path: Path) -> None:
    samples = _samples(9)
    path = _write_tar(tmp_path / "s.tar", samples, tarfile.GNU_FORMAT)
    out = tmp_path / "o.tar"
    assert rewrite_tar(str(path), out, [k for k, _ in samples]) == (0, 9)
    assert out.read_bytes() == bytes(10240)
    assert _tar_members(out) == []
    assert sample_keys(str(out)) == [] and list(iter_images(str(out))) == []


def test_rewrite_refuses_to_overwrite_its_source(tmp_path: Path) -> None:
    path = _write_tar(tmp_path / "s.tar", _samples(3))
    before = path.read_bytes()
    os.link(path, tmp_path / "alias.tar")
    for dst in (path, tmp_path / "alias.tar"):
        with pytest.raises(ExpungeError, match="onto itself"):
            rewrite_tar(str(path), dst, {"000000001"})
    assert path.read_bytes() == before


def test_rewrite_drops_hardlinks_into_dropped_samples_and_keeps_directories(tmp_path: Path) -> None:
    path = tmp_path / "s.tar"
    with tarfile.open(path, "w") as tf:
        ti = tarfile.TarInfo("shard")
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
        for key in ("shard/a", "shard/b"):
            ti = tarfile.TarInfo(f"{key}.jpg")
            ti.size = 4
            tf.addfile(ti, io.BytesIO(b"\xff\xd8\xff\xd9"))
        ti = tarfile.TarInfo("shard/b.alt.jpg")
        ti.type, ti.linkname = tarfile.LNKTYPE, "shard/a.jpg"  # b's extra image is a's data
        tf.addfile(ti)
        ti = tarfile.TarInfo("shard/c.jpg")
        ti.type, ti.linkname = tarfile.SYMTYPE, "b.jpg"
        tf.addfile(ti)
    assert sample_keys(str(path)) == ["shard/a", "shard/b"]  # links are no sample members
    out = tmp_path / "o.tar"
    assert rewrite_tar(str(path), out, {"shard/a"}) == (1, 1)
    assert [ti.name for ti in _tar_members(out)] == ["shard", "shard/b.jpg", "shard/c.jpg"]


# ------------------------------------------------------------------------------------------------
# companions
# ------------------------------------------------------------------------------------------------


def test_rewrite_companions_parquet_and_stats(tmp_path: Path) -> None:
    shard, samples = _shard(tmp_path)
    keys = [k for k, _ in samples]
    drop = {keys[0], keys[5], keys[20], "000000022", "not-in-this-shard"}  # 000000022 failed to download
    out_dir = tmp_path / "out"
    rewrite_companions(shard, out_dir, drop)
    assert sorted(os.listdir(out_dir)) == ["00000.parquet", "00000_stats.json"]  # no temporaries
    src = pq.read_table(shard.parquet)
    got = pq.read_table(out_dir / "00000.parquet")
    assert got.schema == src.schema and got.schema.metadata == src.schema.metadata
    assert got.to_pylist() == [r for r in src.to_pylist() if r["key"] not in drop]
    assert pq.ParquetFile(out_dir / "00000.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    stats = json.loads((out_dir / "00000_stats.json").read_text())
    original = json.loads(Path(shard.stats or "").read_text())
    assert stats["count"] == original["count"] - 4
    assert stats["successes"] == original["successes"] - 3
    assert stats["status_dict"]["success"] == original["status_dict"]["success"] - 3
    assert stats["failed_to_download"] == 2 and stats["failed_to_resize"] == 1
    assert stats["expunge_removed"] == 4
    for field in ("duration", "start_time", "end_time"):
        assert stats[field] == original[field]
    # Cleaning the cleaned release again accumulates.
    again = TarShard(
        shard.name, shard.path, str(out_dir / "00000.parquet"), str(out_dir / "00000_stats.json")
    )
    rewrite_companions(again, tmp_path / "out2", {keys[1]})
    assert json.loads((tmp_path / "out2" / "00000_stats.json").read_text())["expunge_removed"] == 5


def test_rewrite_companions_without_parquet_counts_from_the_tar(tmp_path: Path) -> None:
    shard, samples = _shard(tmp_path)
    bare = TarShard(shard.name, shard.path, None, shard.stats)
    rewrite_companions(bare, tmp_path / "out", {samples[1][0], samples[2][0], "000000099"})
    assert os.listdir(tmp_path / "out") == ["00000_stats.json"]
    stats = json.loads((tmp_path / "out" / "00000_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["expunge_removed"]) == (25 - 2, 21 - 2, 2)


def test_rewrite_companions_errors(tmp_path: Path) -> None:
    shard, _ = _shard(tmp_path)
    err = _error(lambda: rewrite_companions(shard, tmp_path / "out", {"x"}, key_column="SAMPLE_ID"))
    assert err.path == shard.parquet and "SAMPLE_ID" in str(err)
    Path(shard.stats or "").write_text('{"count": 3,\n "successes": }')
    err = _error(lambda: rewrite_companions(shard, tmp_path / "out", {"000000001"}))
    assert (err.path, err.where) == (shard.stats, "line 2")
    assert not (tmp_path / "out").exists()  # everything is checked before anything is written


def test_rewrite_companions_links_integer_keys_and_refuses_keys_that_do_not_match(tmp_path: Path) -> None:
    """An integer column links ``1`` to ``000000001`` by value; text spelled otherwise is an error."""
    shard, samples = _shard(tmp_path)
    table = pq.read_table(shard.parquet)
    col = table.schema.get_field_index("key")
    as_int = pa.array([int(k) for k in table.column("key").to_pylist()], pa.int64())
    pq.write_table(table.set_column(col, "key", as_int), shard.parquet)
    rewrite_companions(shard, tmp_path / "out", {samples[1][0], samples[2][0]})
    assert pq.read_table(tmp_path / "out" / "00000.parquet").column("key").to_pylist() == [
        v for v in as_int.to_pylist() if v not in (1, 2)
    ]
    as_text = pa.array([str(int(k)) for k in table.column("key").to_pylist()], pa.string())
    pq.write_table(table.set_column(col, "key", as_text), shard.parquet)
    err = _error(lambda: rewrite_companions(shard, tmp_path / "out2", {samples[1][0], samples[2][0]}))
    assert err.path == shard.parquet and "2 dropped sample(s)" in str(err)
    assert samples[1][0] not in str(err)  # keys are never quoted
    assert not (tmp_path / "out2").exists()


# ------------------------------------------------------------------------------------------------
# cut, corrupt and foreign files
# ------------------------------------------------------------------------------------------------


def _readers(path: Path, tmp_path: Path) -> list[Callable[[], Any]]:
    p = str(path)
    return [
        lambda: sample_keys(p),
        lambda: list(iter_images(p)),
        lambda: rewrite_tar(p, tmp_path / "never.tar", {"000000001"}),
    ]


def _assert_offset_error(path: Path, tmp_path: Path, offset: int | None = None) -> None:
    for read in _readers(path, tmp_path):
        err = _error(read)
        assert err.path == str(path) and str(path) in str(err)
        assert err.where is not None and err.where.startswith("offset ")
        if offset is not None:
            assert err.where == f"offset {offset}", str(err)
        assert "000000" not in err.message  # never quotes member names
    assert not (tmp_path / "never.tar").exists()  # validated before anything is written


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_truncation_anywhere_is_an_error_with_an_offset(tmp_path: Path, fmt: int) -> None:
    path = _write_tar(tmp_path / "s.tar", [(f"deep.dir/{'n' * 90}/{k}", ms) for k, ms in _samples(8)], fmt)
    raw = path.read_bytes()
    marker = len(raw.rstrip(b"\x00"))
    marker += -marker % 512
    rng = random.Random(7)
    cuts = {0, 1, 511, 512, 513, marker - 1, marker, marker + 1, marker + 512, marker + 1023}
    cuts |= {b + d for b in range(0, marker, 512) for d in (-1, 0, 1) if 0 <= b + d < marker}
    cuts |= set(rng.sample(range(marker + 1024), 60))
    cut = tmp_path / "cut.tar"
    for n in sorted(cuts):
        cut.write_bytes(raw[:n])
        _assert_offset_error(cut, tmp_path)
    # A cut inside the record padding after the marker loses nothing: still a readable shard.
    cut.write_bytes(raw[: marker + 1024 + 700])
    assert sample_keys(str(cut)) == sample_keys(str(path))


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_flipped_header_byte_names_the_header(tmp_path: Path, fmt: int) -> None:
    samples = _samples(6)
    path = _write_tar(
        tmp_path / "s.tar",
        [(f"{'x' * 120}.d/{k}" if i == 2 else k, ms) for i, (k, ms) in enumerate(samples)],
        fmt,
    )
    raw = path.read_bytes()
    headers = sorted(
        {ti.offset for ti in _tar_members(path)} | {ti.offset_data - 512 for ti in _tar_members(path)}
    )
    marker = len(raw.rstrip(b"\x00"))
    marker += -marker % 512
    bad = tmp_path / "bad.tar"
    for hdr in [*headers, marker]:
        for at in (0, 100, 124, 148, 155, 156, 257, 345, 511):
            flipped = bytearray(raw)
            flipped[hdr + at] ^= 0xFF
            bad.write_bytes(bytes(flipped))
            _assert_offset_error(bad, tmp_path, hdr)
    flipped = bytearray(raw)
    flipped[marker + 512 + 9] ^= 0xFF  # second zero block of the marker
    bad.write_bytes(bytes(flipped))
    _assert_offset_error(bad, tmp_path, marker)


def test_foreign_files_are_not_tars(tmp_path: Path) -> None:
    good = _write_tar(tmp_path / "s.tar", _samples(3))
    table_path = tmp_path / "p.tar"
    pq.write_table(pa.table({"key": ["a"]}), table_path)
    foreign = {
        "empty.tar": b"",
        "short.tar": b"apple river",
        "random.tar": random.Random(1).randbytes(4096),
        "gz.tar": gzip.compress(good.read_bytes()),
        "text.tar": ("meadow lantern\n" * 200).encode(),
        "p.tar": table_path.read_bytes(),
    }
    for name, data in foreign.items():
        path = tmp_path / name
        path.write_bytes(data)
        _assert_offset_error(path, tmp_path, 0)
    assert "gzip" in str(_error(lambda: sample_keys(str(tmp_path / "gz.tar"))))


def test_unreadable_path(tmp_path: Path) -> None:
    err = _error(lambda: sample_keys(str(tmp_path / "absent.tar")))
    assert err.path == str(tmp_path / "absent.tar")


def test_random_damage_never_escapes_as_a_raw_exception(tmp_path: Path) -> None:
    """Bytes overwritten anywhere (data included), with or without a cut: a result or an ExpungeError."""
    rng = random.Random(11)
    bad, out = tmp_path / "bad.tar", tmp_path / "o.tar"
    for fmt in FORMATS.values():
        samples = [(f"d.{i % 3}/{'y' * (i * 13)}/{k}", ms) for i, (k, ms) in enumerate(_samples(10))]
        raw = _write_tar(tmp_path / "s.tar", samples, fmt).read_bytes()
        for _ in range(150):
            damaged = bytearray(raw)
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            bad.write_bytes(bytes(damaged[: rng.randrange(len(damaged))] if rng.random() < 0.3 else damaged))
            try:
                sample_keys(str(bad))
                list(iter_images(str(bad)))
                rewrite_tar(str(bad), out, {"000000003"})
            except ExpungeError as err:
                assert err.path == str(bad) and (err.where or "").startswith("offset ")
