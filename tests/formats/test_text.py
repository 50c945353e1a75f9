"""The text format's reading and faithful rewriting: layouts, compression, line endings, BOM, quarantine."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from expunge.errors import ExpungeError
from expunge.formats import text, text_read
from expunge.formats.registry import discover

ROWS = [(f"a neutral caption {i}", f"https://img{i}.example/p/{i}.jpg") for i in range(20)]


def _write(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    elif path.name.endswith(".zst"):
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    path.write_bytes(data)
    return path


def _plain(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".zst"):
        return pa.CompressedInputStream(pa.OSFile(str(path)), "zstd").read()
    return path.read_bytes()


def _tsv(nl: bytes = b"\n", bom: bool = False) -> bytes:
    return (text_read.BOM if bom else b"") + b"".join(f"{c}\t{u}".encode() + nl for c, u in ROWS)


def _urls(path: Path, column: str) -> list[str | None]:
    return [v for a in text_read.iter_values(str(path), column, text=True) for v in a.to_pylist()]


@pytest.mark.parametrize("name", ["cc.tsv", "cc.tsv.gz", "cc.tsv.zst"])
@pytest.mark.parametrize(("nl", "bom"), [(b"\n", False), (b"\r\n", True)])
def test_headerless_tsv_detects_columns_and_rewrites_byte_for_byte(
    tmp_path: Path, name: str, nl: bytes, bom: bool
) -> None:
    src = _write(tmp_path / name, _tsv(nl, bom))
    cols = text_read.detect(str(src), None, None, None, True)
    assert (cols.url, cols.caption, cols.key) == ("1", "0", None)
    assert text_read.count_rows(str(src)) == 20
    assert _urls(src, "1") == [u for _, u in ROWS]
    dst = tmp_path / ("out-" + name)
    assert text.rewrite(str(src), dst, [0, 5, 19]) == 17
    want = (text_read.BOM if bom else b"") + b"".join(
        f"{c}\t{u}".encode() + nl for i, (c, u) in enumerate(ROWS) if i not in (0, 5, 19)
    )
    assert _plain(dst) == want
    assert dst.read_bytes()[:4] == src.read_bytes()[:4]  # same compression
    # Reruns are byte-identical (gzip keeps the source's header mtime).
    again = tmp_path / ("again-" + name)
    text.rewrite(str(src), again, [0, 5, 19])
    assert again.read_bytes() == dst.read_bytes()


def test_url_column_by_position_and_header_by_name(tmp_path: Path) -> None:
    src = _write(tmp_path / "h.tsv", b"caption\tURL\n" + _tsv())
    cols = text_read.detect(str(src), None, None, None, True)
    assert (cols.url, cols.caption) == ("URL", "caption")
    assert text_read.detect(str(src), "1", "0", None, True).url == "URL"
    assert text_read.count_rows(str(src)) == 20
    dst = tmp_path / "o.tsv"
    text.rewrite(str(src), dst, [0])
    assert dst.read_bytes() == b"caption\tURL\n" + _tsv().split(b"\n", 1)[1]
    with pytest.raises(ExpungeError, match="no column"):
        text_read.detect(str(src), "7", None, None, True)


def test_csv_quoted_delimiters_newlines_and_quotes(tmp_path: Path) -> None:
    body = (
        b"url,caption\r\n"
        b'https://a.example/1.jpg,"a caption, with a comma"\r\n'
        b'https://a.example/2.jpg,"two\r\nlines and ""quotes"""\r\n'
        b"https://a.example/3.jpg,plain\r\n"
    )
    src = _write(tmp_path / "q.csv", body)
    assert _urls(src, "url") == [f"https://a.example/{i}.jpg" for i in (1, 2, 3)]
    assert [v for a in text_read.iter_values(str(src), "caption") for v in a.to_pylist()][1] == (
        'two\r\nlines and "quotes"'
    )
    dst = tmp_path / "o.csv"
    text.rewrite(str(src), dst, [0])
    assert dst.read_bytes() == b"url,caption\r\n" + body.split(b"\r\n", 2)[2]


def test_jsonl_with_url_and_caption_keys(tmp_path: Path) -> None:
    lines = [json.dumps({"url": u, "caption": c}).encode() + b"\n" for c, u in ROWS[:5]]
    src = _write(tmp_path / "r.jsonl.gz", b"".join(lines))
    cols = text_read.detect(str(src), None, None, None, True)
    assert (cols.url, cols.caption) == ("url", "caption")
    dst = tmp_path / "o.jsonl.gz"
    text.rewrite(str(src), dst, [2])
    assert _plain(dst) == b"".join(lines[:2] + lines[3:])


def test_rows_that_do_not_parse_have_no_url(tmp_path: Path) -> None:
    tsv = _write(tmp_path / "m.tsv", _tsv() + b"only one field\n" + b"bad \xff utf8\thttps://x.example/\n\n")
    assert text_read.count_rows(str(tsv)) == 22  # the blank line is not a row
    assert _urls(tsv, "1")[20:] == [None, None]
    bad_json = b'{"url": "https://a.example/"}\n{"url": "https://a.example/", "url": "https://b.example/"}\n'
    bad_json += b'[1]\n{"url": \n{"url": "\\ud800"}\n'
    js = _write(tmp_path / "m.jsonl", bad_json)
    assert _urls(js, "url") == ["https://a.example/", None, None, None, None]
    csvf = _write(tmp_path / "m.csv", b'url,c\nhttps://a.example/,x"y\nhttps://a.example/,"open\n')
    # A stray quote opens a field that the next line's quote closes: one record, which does not parse.
    assert _urls(csvf, "url") == [None]
    tail = _write(
        tmp_path / "t.csv", b'url,c\nhttps://a.example/,ok\nhttps://b.example/,"never closed\nmore\n'
    )
    assert _urls(tail, "url") == ["https://a.example/", None]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.tsv", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a text file"),
        ("x.tsv.gz", b"plain text\n", "not gzip data"),
        ("x.tsv.zst", b"plain text\n", "not zstd data"),
        ("x.tsv", gzip.compress(b"a\tb\n"), "compressed data"),
        ("x.tsv.gz", gzip.compress(_tsv())[:-12], "corrupt or truncated gzip"),
    ],
)
def test_not_text_is_refused_in_one_line(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(ExpungeError, match=message) as err:
        text_read.count_rows(str(src))
    assert "\n" not in err.value.one_line()


def test_several_url_columns_refused_and_discovery(tmp_path: Path) -> None:
    src = _write(tmp_path / "d" / "two.tsv", b"") if (tmp_path / "d").mkdir() is None else None
    assert src is not None
    src.write_bytes(b"".join(f"https://a{i}.example/\thttps://b{i}.example/\n".encode() for i in range(5)))
    with pytest.raises(ExpungeError, match="several URL-like columns"):
        text_read.detect(str(src), None, None, None, True)
    assert text_read.detect(str(src), "0", None, None, True).url == "0"
    _, shards, kind = discover([str(tmp_path / "d")])
    assert kind == "text" and [s.name for s in shards] == ["two.tsv"]
    (tmp_path / "d" / "also.parquet").write_bytes(b"PAR1")
    with pytest.raises(ExpungeError, match="both text"):
        discover([str(tmp_path / "d")])


def test_a_parquet_file_named_explicitly_is_not_claimed(tmp_path: Path) -> None:
    """Regression: the walk keeps any file named explicitly, so text claimed explicit parquet files."""
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"url": ["https://a.example/"]}), tmp_path / "p.parquet")
    assert discover([str(tmp_path / "p.parquet")])[2] == "parquet"
    _write(tmp_path / "t.tsv", _tsv())
    with pytest.raises(ExpungeError, match=r"not a \.tsv"):
        discover([str(tmp_path / "t.tsv"), str(tmp_path / "p.parquet")])
