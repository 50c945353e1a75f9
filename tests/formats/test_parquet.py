"""Parquet shards: discovery, column detection, faithful rewrites, and corruption reported as ExpungeError."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.formats.parquet import ColumnMap, detect_columns, discover, iter_column, num_rows, rewrite

WORDS = ("apple", "river", "stone", "cloud", "maple", "harbor", "lantern", "meadow")


def _touch_parquet(path: Path, n: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"url": [f"http://h{i}.example/{path.stem}" for i in range(n)]}), path)
    return path


def _laion_like(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    return pa.table(
        {
            "SAMPLE_ID": pa.array(np.arange(n, dtype=np.int64) * 7 + 1000),
            "URL": pa.array(
                [f"http://img{i % 97}.example/{i}/{rng.integers(1 << 30)}.jpg" for i in range(n)]
            ),
            "TEXT": pa.array([None if i % 11 == 0 else " ".join(rng.choice(words, 3)) for i in range(n)]),
            "HEIGHT": pa.array(rng.integers(32, 4096, n).astype(np.int32)),
            "WIDTH": pa.array(rng.integers(32, 4096, n).astype(np.int32)),
            "LICENSE": pa.array(rng.choice(np.array(["?", "cc-by", "cc0"]), n)),
            "similarity": pa.array(rng.random(n)),
            "tags": pa.array([[str(w) for w in rng.choice(words, i % 4)] for i in range(n)]),
        }
    ).replace_schema_metadata({"origin": "synthetic test shard", "creator": "tests"})


def _leaf_settings(path: Path) -> list[list[tuple[str, str, bool]]]:
    """Per row group, per leaf column: (path, compression, dictionary-encoded)."""
    md = pq.ParquetFile(path).metadata
    out = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        out.append(
            [
                (
                    rg.column(j).path_in_schema,
                    rg.column(j).compression,
                    any("DICTIONARY" in e for e in rg.column(j).encodings),
                )
                for j in range(rg.num_columns)
            ]
        )
    return out


def _group_sizes(path: Path) -> list[int]:
    md = pq.ParquetFile(path).metadata
    return [md.row_group(i).num_rows for i in range(md.num_row_groups)]


def _error(fn: object) -> ExpungeError:
    with pytest.raises(ExpungeError) as info:
        fn()  # type: ignore[operator]
    return info.value


# ------------------------------------------------------------------------------------------------
# discover
# ------------------------------------------------------------------------------------------------


def test_discover_directory_nested_hidden_and_sorted(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for rel in (
        "part-10.parquet",
        "part-2.parquet",
        "b/x.parquet",
        "a/deep/y.pq",
        "a/z.parquet",
        ".hidden/h.parquet",  # hidden directory
        "a/.cache/c.parquet",  # nested hidden directory
        "a/.partial.parquet",  # hidden file
        "_SUCCESS.parquet",  # underscore file
    ):
        _touch_parquet(root / rel)
    (root / "notes.txt").write_text("neutral words")
    (root / "a" / "readme.json").write_text("{}")
    got_root, shards = discover([str(root)])
    assert got_root == str(root)
    names = [s.name for s in shards]
    assert names == sorted(names)
    assert set(names) == {"part-10.parquet", "part-2.parquet", "b/x.parquet", "a/deep/y.pq", "a/z.parquet"}
    for s in shards:
        assert os.path.isabs(s.path) and s.path == str(root / s.name)
    # file:// prefix and a trailing slash are accepted, the result is the same.
    assert discover([f"file://{root}/"])[1] == shards


def test_discover_root_is_the_common_directory(tmp_path: Path) -> None:
    _touch_parquet(tmp_path / "ds" / "sub" / "only" / "one.parquet")
    root, shards = discover([str(tmp_path / "ds")])
    assert root == str(tmp_path / "ds" / "sub" / "only")
    assert [s.name for s in shards] == ["one.parquet"]


def test_discover_glob(tmp_path: Path) -> None:
    for rel in ("a/1.parquet", "a/2.parquet", "a/3.txt", "b/4.parquet", "b/c/5.parquet"):
        _touch_parquet(tmp_path / rel)
    root, shards = discover([str(tmp_path / "*" / "*.parquet")])
    assert root == str(tmp_path)
    assert [s.name for s in shards] == ["a/1.parquet", "a/2.parquet", "b/4.parquet"]
    _, shards = discover([str(tmp_path / "**" / "*.parquet")])
    assert [s.name for s in shards] == ["a/1.parquet", "a/2.parquet", "b/4.parquet", "b/c/5.parquet"]
    with pytest.raises(ExpungeError, match="no parquet shards"):
        discover([str(tmp_path / "*.nothing")])


def test_discover_explicit_files_deduplicated_and_sorted(tmp_path: Path) -> None:
    b = _touch_parquet(tmp_path / "x" / "b.parquet")
    a = _touch_parquet(tmp_path / "y" / "a.parquet")
    root, shards = discover([str(b), str(a), str(b), str(tmp_path / "x")])
    assert root == str(tmp_path)
    assert [s.name for s in shards] == ["x/b.parquet", "y/a.parquet"]
    _, single = discover([str(a)])
    assert [(s.name, s.path) for s in single] == [("a.parquet", str(a))]


def test_discover_missing_path(tmp_path: Path) -> None:
    _touch_parquet(tmp_path / "a.parquet")
    missing = str(tmp_path / "absent")
    err = _error(lambda: discover([str(tmp_path / "a.parquet"), missing]))
    assert err.path == missing
    assert "not found" in str(err)


def test_discover_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    _touch_parquet(tmp_path / "empty" / ".hidden" / "x.parquet")
    with pytest.raises(ExpungeError, match="no parquet shards"):
        discover([str(tmp_path / "empty")])


# ------------------------------------------------------------------------------------------------
# detect_columns
# ------------------------------------------------------------------------------------------------


def _schema_file(tmp_path: Path, names: list[str], name: str = "s.parquet") -> str:
    path = tmp_path / name
    pq.write_table(pa.table({n: pa.array(["v"], pa.string()) for n in names}), path)
    return str(path)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ["SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity"],
            ("URL", "TEXT", "SAMPLE_ID"),
        ),
        (["url", "caption", "key", "status", "width"], ("url", "caption", "key")),
        (["key", "url", "text", "punsafe"], ("url", "text", "key")),
        (["Url", "Caption", "Key"], ("Url", "Caption", "Key")),  # case-insensitive fallback
        (["image_url", "alt"], ("image_url", "alt", None)),
        (["url"], ("url", None, None)),
    ],
)
def test_detect_columns(
    tmp_path: Path, names: list[str], expected: tuple[str, str | None, str | None]
) -> None:
    assert detect_columns(_schema_file(tmp_path, names)) == ColumnMap(*expected)


def test_detect_columns_overrides(tmp_path: Path) -> None:
    path = _schema_file(tmp_path, ["URL", "link_b", "TEXT", "alt_text", "SAMPLE_ID", "row_id"])
    got = detect_columns(path, url="link_b", caption="alt_text", key="row_id")
    assert got == ColumnMap("link_b", "alt_text", "row_id")
    assert detect_columns(path, caption="alt_text") == ColumnMap("URL", "alt_text", "SAMPLE_ID")


def test_detect_columns_missing_url(tmp_path: Path) -> None:
    path = _schema_file(tmp_path, ["caption", "key", "address"])
    err = _error(lambda: detect_columns(path))
    assert err.path == path and path in str(err)
    assert "URL column" in str(err)
    err = _error(lambda: detect_columns(_schema_file(tmp_path, ["url"], "o.parquet"), url="link"))
    assert "link" in str(err) and err.path == str(tmp_path / "o.parquet")


@pytest.mark.parametrize("kwargs", [{"caption": "alt_text"}, {"key": "row_id"}])
def test_detect_columns_missing_override(tmp_path: Path, kwargs: dict[str, str]) -> None:
    path = _schema_file(tmp_path, ["url", "caption", "key"])
    err = _error(lambda: detect_columns(path, **kwargs))
    assert err.path == path
    assert next(iter(kwargs.values())) in str(err)


def test_detect_columns_on_a_non_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_text("neutral words, not parquet")
    err = _error(lambda: detect_columns(str(path)))
    assert err.path == str(path)


# ------------------------------------------------------------------------------------------------
# rewrite
# ------------------------------------------------------------------------------------------------

COMPRESSION = {
    "SAMPLE_ID": "zstd",
    "URL": "snappy",
    "TEXT": "gzip",
    "HEIGHT": "none",
    "WIDTH": "snappy",
    "LICENSE": "none",
    "similarity": "zstd",
    "tags.list.element": "gzip",
}
DICTIONARY = ["URL", "LICENSE", "tags.list.element"]


def _write_source(path: Path, table: pa.Table, row_group_size: int, **kwargs: object) -> Path:
    options: dict[str, object] = {"compression": COMPRESSION, "use_dictionary": DICTIONARY}
    options.update(kwargs)
    pq.write_table(table, path, row_group_size=row_group_size, **options)  # type: ignore[arg-type]
    return path


def _check_rewrite(src: Path, dst: Path, keep: np.ndarray) -> None:
    source = pq.read_table(src)
    written = rewrite(str(src), dst, keep)
    assert written == int(keep.sum())
    out = pq.read_table(dst)
    expected = source.filter(pa.array(keep))
    assert out.schema.equals(source.schema, check_metadata=True)
    assert pq.read_schema(dst).equals(pq.read_schema(src), check_metadata=True)
    assert out.equals(expected)
    # Per-column codec and dictionary use match the source's, in every row group.
    src_settings = _leaf_settings(src)[0]
    for group in _leaf_settings(dst):
        assert group == src_settings
    # Rows are re-cut to the source's row-group size.
    size = _group_sizes(src)[0]
    sizes = _group_sizes(dst)
    assert sum(sizes) == written
    assert all(s == size for s in sizes[:-1])
    assert (not sizes and written == 0) or 0 < sizes[-1] <= size
    src_md, dst_md = pq.ParquetFile(src).metadata, pq.ParquetFile(dst).metadata
    assert dst_md.format_version == src_md.format_version
    assert (b"ARROW:schema" in (dst_md.metadata or {})) == (b"ARROW:schema" in (src_md.metadata or {}))


def test_rewrite_keeps_layout_and_writes_exactly_the_kept_rows(tmp_path: Path) -> None:
    n = 1000
    src = _write_source(tmp_path / "src.parquet", _laion_like(n), row_group_size=128)
    assert _group_sizes(src) == [128] * 7 + [104]
    # The source really uses what we claim to preserve.
    codecs = {p: c for p, c, _ in _leaf_settings(src)[0]}
    assert codecs == {k: ("UNCOMPRESSED" if v == "none" else v.upper()) for k, v in COMPRESSION.items()}
    assert {p for p, _, d in _leaf_settings(src)[0] if d} == set(DICTIONARY)

    rng = np.random.default_rng(1)
    keep = rng.random(n) > 0.3
    keep[128:256] = False  # a whole row group removed
    keep[300] = False
    _check_rewrite(src, tmp_path / "dst.parquet", keep)
    # With 3 of every 10 rows gone, each output group merges rows from several input groups.
    assert len(_group_sizes(tmp_path / "dst.parquet")) < len(_group_sizes(src))


@pytest.mark.parametrize("which", ["all", "none", "first", "last", "alternate"])
def test_rewrite_edge_selections(tmp_path: Path, which: str) -> None:
    n = 250
    src = _write_source(tmp_path / "src.parquet", _laion_like(n, seed=2), row_group_size=50)
    keep = {
        "all": np.ones(n, bool),
        "none": np.zeros(n, bool),
        "first": np.arange(n) == 0,
        "last": np.arange(n) == n - 1,
        "alternate": np.arange(n) % 2 == 0,
    }[which]
    dst = tmp_path / "dst.parquet"
    _check_rewrite(src, dst, keep)
    if which == "all":
        assert _group_sizes(dst) == _group_sizes(src)
    if which == "none":
        assert pq.read_table(dst).num_rows == 0


@pytest.mark.parametrize("codec", ["snappy", "zstd", "gzip", "none"])
def test_rewrite_uniform_codec(tmp_path: Path, codec: str) -> None:
    table = _laion_like(300, seed=3)
    src = _write_source(
        tmp_path / "src.parquet", table, row_group_size=64, compression=codec, use_dictionary=False
    )
    expected = "UNCOMPRESSED" if codec == "none" else codec.upper()
    assert {c for _, c, _ in _leaf_settings(src)[0]} == {expected}
    assert not any(d for _, _, d in _leaf_settings(src)[0])
    keep = np.arange(300) % 3 != 1
    _check_rewrite(src, tmp_path / "dst.parquet", keep)


def test_rewrite_without_stored_arrow_schema(tmp_path: Path) -> None:
    src = _write_source(
        tmp_path / "src.parquet", _laion_like(120, seed=4), row_group_size=40, store_schema=False
    )
    assert not pq.ParquetFile(src).metadata.metadata
    _check_rewrite(src, tmp_path / "dst.parquet", np.arange(120) % 4 != 0)


def test_rewrite_of_a_non_arrow_writer_keeps_key_value_metadata(tmp_path: Path) -> None:
    # DuckDB writes key-value metadata but no ARROW:schema, format version 1.0 and PLAIN_DICTIONARY.
    src = tmp_path / "duck.parquet"
    duckdb.sql(
        "COPY (SELECT i AS key, 'http://r' || (i % 50) || '.example/' || i AS url, "
        "['river', 'stone', 'cloud'][i % 3 + 1] AS caption FROM range(5000) t(i)) "
        f"TO '{src}' (FORMAT parquet, ROW_GROUP_SIZE 2048, COMPRESSION zstd, "
        "KV_METADATA {origin: 'synthetic test shard', creator: 'tests'})"
    )
    md = pq.ParquetFile(src).metadata
    assert b"ARROW:schema" not in md.metadata and md.metadata[b"origin"] == b"synthetic test shard"
    assert md.num_row_groups > 1
    _check_rewrite(src, tmp_path / "dst.parquet", np.arange(5000) % 3 != 0)
    assert pq.ParquetFile(tmp_path / "dst.parquet").metadata.metadata[b"creator"] == b"tests"


def test_rewrite_format_version_1(tmp_path: Path) -> None:
    table = _laion_like(90, seed=5).drop_columns(["tags"])
    src = _write_source(
        tmp_path / "src.parquet", table, row_group_size=30, version="1.0", compression="snappy"
    )
    assert pq.ParquetFile(src).metadata.format_version == "1.0"
    _check_rewrite(src, tmp_path / "dst.parquet", np.arange(90) >= 10)


def test_rewrite_hf_style_and_binary_urls(tmp_path: Path) -> None:
    n = 77
    table = pa.table(
        {
            "key": pa.array([f"{i:09d}" for i in range(n)]),
            "url": pa.array(
                [f"http://river.example/{i}".encode() + b"\xff" * (i % 2) for i in range(n)], pa.binary()
            ),
            "caption": pa.array([WORDS[i % len(WORDS)] for i in range(n)], pa.large_string()),
            "status": pa.array(["success"] * n).dictionary_encode(),
        }
    )
    src = tmp_path / "src.parquet"
    pq.write_table(
        table,
        src,
        row_group_size=20,
        compression={"key": "zstd", "url": "none", "caption": "gzip", "status": "snappy"},
    )
    _check_rewrite(src, tmp_path / "dst.parquet", np.arange(n) % 5 != 2)
    assert (
        pq.read_table(tmp_path / "dst.parquet").schema.field("status").type
        == table.schema.field("status").type
    )


def test_rewrite_of_a_large_row_group(tmp_path: Path) -> None:
    n = 5000
    src = _write_source(tmp_path / "src.parquet", _laion_like(n, seed=6), row_group_size=n)
    keep = np.ones(n, bool)
    keep[::7] = False
    _check_rewrite(src, tmp_path / "dst.parquet", keep)
    assert _group_sizes(tmp_path / "dst.parquet") == [int(keep.sum())]


# ------------------------------------------------------------------------------------------------
# truncated and corrupt files
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def shard(tmp_path: Path) -> tuple[Path, bytes]:
    path = _write_source(tmp_path / "good.parquet", _laion_like(400, seed=7), row_group_size=100)
    return path, path.read_bytes()


@pytest.mark.parametrize("cut", [1, 8, 100, 0.5, 0.99])
def test_truncated_file(tmp_path: Path, shard: tuple[Path, bytes], cut: float) -> None:
    _, data = shard
    keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    bad = tmp_path / "truncated.parquet"
    bad.write_bytes(data[:keep])
    for fn in (
        lambda: detect_columns(str(bad)),
        lambda: num_rows(str(bad)),
        lambda: list(iter_column(str(bad), "URL")),
        lambda: rewrite(str(bad), tmp_path / "out.parquet", np.ones(400, bool)),
    ):
        err = _error(fn)
        assert err.path == str(bad)
        assert str(bad) in str(err)


def test_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "empty.parquet"
    bad.write_bytes(b"")
    assert _error(lambda: num_rows(str(bad))).path == str(bad)


@pytest.mark.parametrize("fill", [b"\xff", b"\x00", b"\x5a"])
def test_corrupt_row_group(tmp_path: Path, shard: tuple[Path, bytes], fill: bytes) -> None:
    src, data = shard
    md = pq.ParquetFile(src).metadata
    col = md.row_group(2).column(1)  # URL, rows 200-299
    start = col.dictionary_page_offset if col.dictionary_page_offset is not None else col.data_page_offset
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(data[:start] + fill * 64 + data[start + 64 :])
    assert len(bad.read_bytes()) == len(data)

    err = _error(lambda: rewrite(str(bad), tmp_path / "out.parquet", np.ones(400, bool)))
    assert err.path == str(bad)
    assert err.where == "rows 200-299"
    assert "row group 2" in str(err)
    chunks = []
    err = _error(lambda: chunks.extend(iter_column(str(bad), "URL")))
    assert (err.path, err.where) == (str(bad), "rows 200-299")
    # Columns other than the damaged one still read.
    assert sum(len(c) for c in iter_column(str(bad), "SAMPLE_ID")) == 400


def test_iter_column_streams_row_groups(shard: tuple[Path, bytes]) -> None:
    src, _ = shard
    chunks = list(iter_column(str(src), "URL"))
    assert [len(c) for c in chunks] == [100] * 4
    assert pa.concat_arrays(chunks).equals(pq.read_table(src).column("URL").combine_chunks())
    with pytest.raises(ExpungeError, match="no column"):
        list(iter_column(str(src), "link"))
