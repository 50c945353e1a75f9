"""Embeddings aligned with metadata shards: discovery from headers, alignment checks, streamed rewrites."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from expunge.atomic import atomic_path
from expunge.errors import ExpungeError
from expunge.formats.embeddings import (
    EmbeddingFile,
    check_aligned,
    find_aligned,
    inspect_npy,
    rewrite_embeddings,
)


def _matrix(rows: int, dim: int, dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, dim)).astype(dtype)


def _save(path: Path, arr: np.ndarray, version: tuple[int, int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, arr, version=version)
    return path


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1")  # discovery never opens the metadata shard
    return path


def _data_section(path: Path) -> bytes:
    with open(path, "rb") as fh:
        major, minor = np.lib.format.read_magic(fh)
        if (major, minor) == (1, 0):
            np.lib.format.read_array_header_1_0(fh)
        else:
            np.lib.format.read_array_header_2_0(fh)
        return fh.read()


def _version(path: Path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        major, minor = np.lib.format.read_magic(fh)
    return (major, minor)


# --- discovery -----------------------------------------------------------------------------------


def _laion(tmp_path: Path) -> Path:
    ds = tmp_path / "laion2B-en"
    for i in range(3):
        _touch(ds / "metadata" / f"metadata_{i:04d}.parquet")
        _save(ds / "img_emb" / f"img_emb_{i:04d}.npy", _matrix(5 + i, 8, "float16", i))
        _save(ds / "text_emb" / f"text_emb_{i:04d}.npy", _matrix(5 + i, 4, "float16", i))
    # Decoys: other padding, another number, another extension, a folder not named *_emb.
    _save(ds / "img_emb" / "img_emb_00001.npy", _matrix(2, 8, "float16"))
    _save(ds / "img_emb" / "img_emb_10001.npy", _matrix(2, 8, "float16"))
    (ds / "img_emb" / "img_emb_0001.json").write_text("{}")
    _save(ds / "labels" / "labels_0001.npy", np.zeros((6, 1), dtype=np.int64))
    return ds


@pytest.mark.parametrize("root_is_metadata", [True, False])
def test_find_aligned_laion_layout(tmp_path: Path, root_is_metadata: bool) -> None:
    ds = _laion(tmp_path)
    root = ds / "metadata" if root_is_metadata else ds
    found = find_aligned(str(ds / "metadata" / "metadata_0001.parquet"), str(root))
    assert found == [
        EmbeddingFile("img_emb", str(ds / "img_emb" / "img_emb_0001.npy"), 6, 8, "float16"),
        EmbeddingFile("text_emb", str(ds / "text_emb" / "text_emb_0001.npy"), 6, 4, "float16"),
    ]
    assert all(os.path.isabs(e.path) for e in found)


def test_find_aligned_does_not_search_above_root(tmp_path: Path) -> None:
    # A *_emb folder two levels above the dataset root belongs to something else.
    _save(tmp_path / "img_emb" / "img_emb_0000.npy", _matrix(3, 8, "float32"))
    meta = _touch(tmp_path / "a" / "b" / "metadata_0000.parquet")
    assert find_aligned(str(meta), str(tmp_path / "a" / "b")) == []


def test_find_aligned_emb_folders_beside_the_shard(tmp_path: Path) -> None:
    meta = _touch(tmp_path / "ds" / "part_7.parquet")
    _save(tmp_path / "ds" / "img_emb" / "img_emb_7.npy", _matrix(4, 3, "float32"))
    (found,) = find_aligned(str(meta), str(tmp_path / "ds"))
    assert (found.kind, found.rows, found.dim, found.dtype) == ("img_emb", 4, 3, "float32")


def test_find_aligned_side_by_side(tmp_path: Path) -> None:
    meta = _touch(tmp_path / "ds" / "shard-a.parquet")
    _save(tmp_path / "ds" / "shard-a.npy", _matrix(4, 3, "float32"))
    _save(tmp_path / "ds" / "shard-b.npy", _matrix(4, 3, "float32"))
    found = find_aligned(str(meta), str(tmp_path / "ds"))
    assert found == [EmbeddingFile("emb", str(tmp_path / "ds" / "shard-a.npy"), 4, 3, "float32")]


def test_find_aligned_none(tmp_path: Path) -> None:
    meta = _touch(tmp_path / "ds" / "metadata_0000.parquet")
    assert find_aligned(str(meta), str(tmp_path / "ds")) == []


def test_discovery_reads_only_the_header(tmp_path: Path) -> None:
    # Declares 10^9 x 768 float16 (~1.5 TB) but holds only a header: a sparse file of the right size
    # shows that discovery neither reads nor maps the data.
    ds = tmp_path / "ds"
    meta = _touch(ds / "metadata" / "metadata_0000.parquet")
    huge = ds / "img_emb" / "img_emb_0000.npy"
    huge.parent.mkdir(parents=True)
    rows, dim = 10**9, 768
    with open(huge, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f2", "fortran_order": False, "shape": (rows, dim)}
        )
        fh.truncate(fh.tell() + rows * dim * 2)
    tracemalloc.start()
    try:
        (found,) = find_aligned(str(meta), str(ds))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (found.rows, found.dim, found.dtype) == (rows, dim, "float16")
    assert peak < 1 << 20


def test_discovery_rejects_bad_matching_files(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    meta = _touch(ds / "metadata" / "metadata_0000.parquet")
    bad = ds / "img_emb" / "img_emb_0000.npy"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"secret-looking content, not npy")
    with pytest.raises(ExpungeError) as err:
        find_aligned(str(meta), str(ds))
    assert err.value.path == str(bad)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize(
    ("arr", "needle"),
    [
        (np.zeros(5, dtype=np.float32), "2-D"),
        (np.zeros((3, 2), dtype=np.int32), "dtype"),
        (np.asfortranarray(np.zeros((3, 2), dtype=np.float32)), "Fortran"),
    ],
)
def test_inspect_rejects_unsupported(tmp_path: Path, arr: np.ndarray, needle: str) -> None:
    path = _save(tmp_path / "x.npy", arr)
    with pytest.raises(ExpungeError, match=needle):
        inspect_npy(str(path), "img_emb")


# --- alignment -----------------------------------------------------------------------------------


def test_check_aligned(tmp_path: Path) -> None:
    path = _save(tmp_path / "img_emb" / "img_emb_0000.npy", _matrix(5, 4, "float16"))
    emb = inspect_npy(str(path), "img_emb")
    check_aligned(emb, 5)
    with pytest.raises(ExpungeError) as err:
        check_aligned(emb, 6)
    assert err.value.path == str(path)
    assert "5 rows" in err.value.message and "6" in err.value.message
    assert str(path) in err.value.one_line()


# --- rewrite -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000, 65536])
def test_rewrite_keeps_exactly_the_kept_rows_in_order(tmp_path: Path, dtype: str, chunk_rows: int) -> None:
    src_arr = _matrix(203, 16, dtype, seed=3)
    src = _save(tmp_path / "img_emb_0000.npy", src_arr)
    keep = np.random.default_rng(9).random(203) < 0.6
    keep[0] = keep[-1] = False
    dst = tmp_path / "out.npy"
    n = rewrite_embeddings(str(src), dst, keep, chunk_rows=chunk_rows)
    out = np.load(dst)
    assert n == int(keep.sum()) == out.shape[0]
    assert out.dtype == np.dtype(dtype) and out.shape[1] == 16
    kept_rows = np.flatnonzero(keep)
    for j, i in enumerate(kept_rows):
        assert out[j].tobytes() == src_arr[i].tobytes()
    assert _version(dst) == _version(src)


def test_rewrite_chunk_boundaries(tmp_path: Path) -> None:
    # Runs of kept and dropped rows that start and end exactly on and just off chunk boundaries.
    src_arr = _matrix(50, 3, "float32")
    src = _save(tmp_path / "e.npy", src_arr)
    keep = np.zeros(50, dtype=bool)
    keep[6:8] = True  # straddles 7
    keep[14:21] = True  # exactly chunk 2 (14..20)
    keep[21:28] = False  # chunk 3 fully dropped
    keep[35] = True  # first row of a chunk
    keep[48:50] = True  # tail of the last, short chunk
    dst = tmp_path / "out.npy"
    assert rewrite_embeddings(str(src), dst, keep, chunk_rows=7) == int(keep.sum())
    np.testing.assert_array_equal(np.load(dst), src_arr[keep])


def test_rewrite_empty_keep(tmp_path: Path) -> None:
    src = _save(tmp_path / "e.npy", _matrix(10, 4, "float16"))
    dst = tmp_path / "out.npy"
    assert rewrite_embeddings(str(src), dst, np.zeros(10, dtype=bool), chunk_rows=3) == 0
    out = np.load(dst)
    assert out.shape == (0, 4) and out.dtype == np.float16
    assert inspect_npy(str(dst), "img_emb").rows == 0


def test_rewrite_of_an_empty_file(tmp_path: Path) -> None:
    src = _save(tmp_path / "e.npy", np.zeros((0, 4), dtype=np.float32))
    dst = tmp_path / "out.npy"
    assert rewrite_embeddings(str(src), dst, np.zeros(0, dtype=bool)) == 0
    assert np.load(dst).shape == (0, 4)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_rewrite_all_kept_is_byte_identical(tmp_path: Path, version: tuple[int, int]) -> None:
    src_arr = _matrix(100, 8, "float16")
    src = _save(tmp_path / "e.npy", src_arr, version=version)
    dst = tmp_path / "out.npy"
    assert rewrite_embeddings(str(src), dst, np.ones(100, dtype=bool), chunk_rows=9) == 100
    assert _data_section(dst) == _data_section(src) == src_arr.tobytes()
    assert _version(dst) == version
    assert dst.read_bytes() == src.read_bytes()  # same header too: shape, dtype and version unchanged


def test_rewrite_keeps_byte_order(tmp_path: Path) -> None:
    src_arr = _matrix(20, 4, "float32").astype(">f4")
    src = _save(tmp_path / "e.npy", src_arr)
    keep = np.arange(20) % 3 == 0
    dst = tmp_path / "out.npy"
    rewrite_embeddings(str(src), dst, keep, chunk_rows=4)
    out = np.load(dst)
    assert out.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(out, src_arr[keep])


def test_rewrite_under_atomic_path(tmp_path: Path) -> None:
    src_arr = _matrix(30, 4, "float16")
    src = _save(tmp_path / "in" / "img_emb_0000.npy", src_arr)
    final = tmp_path / "out" / "img_emb" / "img_emb_0000.npy"
    keep = np.arange(30) % 2 == 1
    with atomic_path(final) as tmp:
        rewrite_embeddings(str(src), tmp, keep, chunk_rows=8)
    np.testing.assert_array_equal(np.load(final), src_arr[keep])
    assert sorted(p.name for p in final.parent.iterdir()) == ["img_emb_0000.npy"]


@pytest.mark.parametrize("cut", [3, 40, -1, -33])
def test_rewrite_truncated_file(tmp_path: Path, cut: int) -> None:
    src = _save(tmp_path / "e.npy", _matrix(40, 8, "float32"))
    data = src.read_bytes()
    src.write_bytes(data[:cut])
    with pytest.raises(ExpungeError) as err:
        rewrite_embeddings(str(src), tmp_path / "out.npy", np.ones(40, dtype=bool))
    assert err.value.path == str(src)


def test_rewrite_file_longer_than_header(tmp_path: Path) -> None:
    src = _save(tmp_path / "e.npy", _matrix(4, 8, "float32"))
    with open(src, "ab") as fh:
        fh.write(b"\0" * 32)
    with pytest.raises(ExpungeError, match="longer"):
        rewrite_embeddings(str(src), tmp_path / "out.npy", np.ones(4, dtype=bool))


def test_rewrite_mask_length_mismatch(tmp_path: Path) -> None:
    src = _save(tmp_path / "e.npy", _matrix(4, 8, "float32"))
    with pytest.raises(ExpungeError) as err:
        rewrite_embeddings(str(src), tmp_path / "out.npy", np.ones(5, dtype=bool))
    assert err.value.path == str(src)


def test_rewrite_rejects_non_boolean_mask(tmp_path: Path) -> None:
    src = _save(tmp_path / "e.npy", _matrix(4, 8, "float32"))
    with pytest.raises(ValueError, match="boolean"):
        rewrite_embeddings(str(src), tmp_path / "out.npy", np.array([0, 2]))


@pytest.mark.parametrize("keep_every", [1, 2])
def test_rewrite_memory_is_bounded_by_the_chunk(tmp_path: Path, keep_every: int) -> None:
    rows, dim, chunk = 40_000, 64, 500
    src = tmp_path / "big.npy"
    # Build the ~10 MB source through a memory map too, so the test itself stays small.
    big = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, 5000):
        big[start : start + 5000] = np.arange(start, start + 5000, dtype=np.float32)[:, None]
    big.flush()
    del big
    file_bytes = rows * dim * 4
    chunk_bytes = chunk * dim * 4
    keep = np.arange(rows) % keep_every == 0
    dst = tmp_path / "out.npy"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        n = rewrite_embeddings(str(src), dst, keep, chunk_rows=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == int(keep.sum())
    assert peak < 4 * chunk_bytes < file_bytes // 10
    out = np.load(dst, mmap_mode="r")
    assert out.shape == (n, dim)
    np.testing.assert_array_equal(out[:, 0], np.flatnonzero(keep).astype(np.float32))
