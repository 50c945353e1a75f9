"""TSV/CSV/JSONL datasets through the real CLI: CC3M-like headerless TSV, compressed and CRLF variants,
malformed rows quarantined, kept rows byte-identical, containment, accounting and verify on the release."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from expunge.cli.app import app

FLAGGED = (3, 11, 17)  # rows whose URLs are on the SYNTHETIC list
CAPTIONS = [f"a neutral caption about a teapot {i}" for i in range(30)]
URLS = [f"https://img{i}.example/photos/{i:04d}.jpg" for i in range(30)]


def _compress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if name.endswith(".zst"):
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as out:
            out.write(data)
        return bytes(sink.getvalue().to_pybytes())
    return data


def _plain(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".zst"):
        return bytes(pa.CompressedInputStream(pa.OSFile(str(path)), "zstd").read())
    return path.read_bytes()


def _lines(kind: str, nl: bytes) -> list[bytes]:
    if kind == "tsv":  # CC3M: caption<TAB>url, no header
        return [f"{c}\t{u}".encode() + nl for c, u in zip(CAPTIONS, URLS, strict=True)]
    if kind == "csv":
        return [f'{u},"{c}, quoted"'.encode() + nl for c, u in zip(CAPTIONS, URLS, strict=True)]
    return [json.dumps({"caption": c, "url": u}).encode() + nl for c, u in zip(CAPTIONS, URLS, strict=True)]


def _run(tmp_path: Path, name: str, lines: list[bytes], head: bytes = b"", tail: bytes = b"") -> dict:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / name).write_bytes(_compress(name, head + b"".join(lines) + tail))
    lst = tmp_path / "synthetic-list.txt"  # SYNTHETIC: md5 of generated .example URLs
    lst.write_text("".join(hashlib.md5(URLS[i].encode()).hexdigest() + "\n" for i in FLAGGED))
    out = tmp_path / "out"
    args = ["clean", str(ds), "--list", f"{lst}:url_md5", "--out", str(out), "--store", str(tmp_path / "st")]
    res = CliRunner().invoke(app, [*args, "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    # Containment: no flagged URL or caption in any file written, nor on the output.
    written = [p for root in (out, tmp_path / "st") for p in root.rglob("*") if p.is_file()]
    for i in FLAGGED:
        for secret in (URLS[i].encode(), CAPTIONS[i].encode()):
            assert secret not in res.output.encode()
            assert all(secret not in _plain(p) for p in written if p.name == name) and all(
                secret not in p.read_bytes() for p in written if p.name != name
            )
    verified = CliRunner().invoke(app, ["verify", str(out)])
    assert verified.exit_code == 0, verified.output
    return summary


@pytest.mark.parametrize(
    ("name", "nl", "bom"),
    [
        ("cc3m.tsv", b"\n", False),
        ("cc3m.tsv.gz", b"\r\n", True),
        ("cc12m.tsv.zst", b"\n", False),
        ("crawl.csv", b"\r\n", False),
        ("redcaps.jsonl.zst", b"\n", True),
    ],
)
def test_text_dataset_end_to_end(tmp_path: Path, name: str, nl: bytes, bom: bool) -> None:
    kind = name.split(".")[1]
    lines = _lines(kind, nl)
    head = (b"\xef\xbb\xbf" if bom else b"") + (b"url,caption" + nl if kind == "csv" else b"")
    summary = _run(tmp_path, name, lines, head)
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_quarantined"]) == (30, 3, 0)
    assert summary["rows_kept"] == 27
    out = tmp_path / "out" / name
    # Kept rows are the source's bytes; header, BOM, line endings and compression as the source.
    assert _plain(out) == head + b"".join(line for i, line in enumerate(lines) if i not in FLAGGED)
    assert out.read_bytes()[:2] == (tmp_path / "ds" / name).read_bytes()[:2]
    labels = {
        d["name"]: d["encodingFormat"]
        for d in json.loads((tmp_path / "out" / "croissant.json").read_text())["distribution"]
    }
    assert labels[name].startswith(("text/", "application/"))


def test_malformed_rows_quarantined_and_counted(tmp_path: Path) -> None:
    lines = _lines("tsv", b"\n")
    bad = [b"one field only\n", b"bad \xff utf8\thttps://bad.example/x.jpg\n", b"a\tb\tc\n"]
    summary = _run(tmp_path, "cc.tsv", lines[:10] + bad + lines[10:], tail=b"\n")
    assert summary["rows_in"] == 33
    assert (summary["rows_removed"], summary["rows_quarantined"], summary["rows_kept"]) == (3, 3, 27)
    assert summary["quarantined_by_reason"] == {"null_url": 3}
    got = (tmp_path / "out" / "cc.tsv").read_bytes()
    assert got == b"".join(line for i, line in enumerate(lines) if i not in FLAGGED) + b"\n"


def test_untouched_shard_is_linked(tmp_path: Path) -> None:
    lines = [line for i, line in enumerate(_lines("tsv", b"\n")) if i not in FLAGGED]
    summary = _run(tmp_path, "clean.tsv.gz", lines)
    assert summary["rows_removed"] == 0
    assert summary["shards"][0]["action"] in ("linked", "copied")
    assert (tmp_path / "out" / "clean.tsv.gz").read_bytes() == (tmp_path / "ds" / "clean.tsv.gz").read_bytes()


def test_binary_file_refused_in_one_line(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "x.tsv").write_bytes(b"\x00\x01\x02binary" * 10)
    lst = tmp_path / "l.txt"
    lst.write_text(hashlib.md5(b"x").hexdigest() + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "clean", str(ds), "--list", f"{lst}:url_md5",
         "--out", "o", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a text file" in lines[0] and "Traceback" not in proc.stderr


def test_caption_lists_work_on_a_headerless_cc3m_file(tmp_path: Path) -> None:
    """The caption is column 0 of CC3M's ``caption<TAB>url``: reading it must not trip the check that
    the shard's URLs are where the dataset's URL column says (found when caption lists were added)."""
    import unicodedata

    captions = [f"a neutral photo of a teapot number {i}" for i in range(12)]
    lines = [f"{c}\thttps://img{i % 3}.photos.example/{i}.jpg\n".encode() for i, c in enumerate(captions)]
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "cc3m.tsv").write_bytes(b"".join(lines))
    listed = {2, 7}
    digests = [hashlib.sha256(unicodedata.normalize("NFC", captions[i]).encode()).hexdigest() for i in listed]
    (tmp_path / "captions.txt").write_text("# SYNTHETIC\n" + "\n".join(digests) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "clean", "ds", "--list", "captions.txt:caption_sha256",
         "--caption-column", "0", "--out", "out", "--json", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_removed"] == len(listed)
    kept = (tmp_path / "out" / "cc3m.tsv").read_bytes()
    assert kept == b"".join(line for i, line in enumerate(lines) if i not in listed)
