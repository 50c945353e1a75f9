"""caption_sha256: lists of SHA-256 of NFC captions, matched exactly against the dataset's caption column.

Captions here are neutral generated phrases; the "known" list is their hashes, labelled SYNTHETIC.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.errors import ExpungeError
from expunge.lists.bank import import_list
from expunge.signals import get_signal
from expunge.signals.caption import CaptionBatch
from expunge.store import Store
from tests.cli.test_app import assert_one_line_error, run

COMPOSED = "caf\u00e9 by the river"  # é as one code point
DECOMPOSED = "cafe\u0301 by the river"  # e + combining acute: the same caption once NFC-normalised
CAPTIONS = [
    "a green teapot on a shelf",
    DECOMPOSED,
    "a kite over the dunes",
    None,
    "A Green Teapot on a shelf",  # case counts: not the listed caption
    "a green  teapot on a shelf",  # so does whitespace (no listed caption is a substring of these)
    "a wooden bench",
    "a green teapot on a shelf",
]
URLS = [f"http://shelf.example/{i}.jpg" for i in range(len(CAPTIONS))]
URLS[6] = None  # no URL: with caption lists only, nothing quarantines it
LISTED = ["a green teapot on a shelf", COMPOSED]  # SYNTHETIC known captions (neutral words)
FLAGGED = {0, 1, 7}


def _hex(caption: str) -> str:
    return hashlib.sha256(unicodedata.normalize("NFC", caption).encode()).hexdigest()


def _dataset(root: Path, caption: bool = True) -> Path:
    root.mkdir()
    cols: dict[str, list[str | None]] = {"url": URLS}
    if caption:
        cols["caption"] = CAPTIONS
    pq.write_table(pa.table(cols), root / "part-00000.parquet", row_group_size=3)
    return root


def _list(tmp_path: Path) -> Path:
    listing = tmp_path / "captions.txt"
    listing.write_text("# SYNTHETIC caption hashes for tests\n" + "".join(_hex(c) + "\n" for c in LISTED))
    return listing


def test_parse_takes_64_hex_digits_only() -> None:
    signal = get_signal("caption_sha256")
    digest = hashlib.sha256(b"a wooden bench").digest()
    assert signal.parse(digest.hex()) == digest
    assert signal.parse(digest.hex().upper()) == digest
    assert (signal.width, signal.recipes, signal.matcher, signal.feature("nfc").name) == (
        32,
        ("nfc",),
        "exact",
        "caption:nfc:sha256",
    )
    for bad in ("a wooden bench", digest.hex()[:-1], digest.hex() + "0", "zz" * 32):
        with pytest.raises(ValueError):
            signal.parse(bad)


def test_a_plaintext_caption_list_is_refused_without_quoting_it(tmp_path: Path) -> None:
    listing = tmp_path / "plain.txt"
    listing.write_text(_hex("a kite over the dunes") + "\na wooden bench\n")
    with pytest.raises(ExpungeError) as err:
        import_list(Store(tmp_path / "st"), listing, signal="caption_sha256")
    assert "line 2" in str(err.value) and "bench" not in str(err.value)


@pytest.mark.parametrize("text_type", [pa.string(), pa.large_string(), pa.binary()])
def test_nfc_composed_and_decomposed_spellings_hash_alike(text_type: pa.DataType) -> None:
    values = pa.array([c.encode() for c in (COMPOSED, DECOMPOSED)] + [None], pa.binary()).cast(text_type)
    batch = CaptionBatch(values)
    feature = get_signal("caption_sha256").feature("nfc")
    got = feature.spec.values(batch, feature).to_pylist()
    assert got[0] == got[1] == bytes.fromhex(_hex(COMPOSED))
    assert got[2] is None  # no caption: no value, matched by nothing


def test_a_caption_that_is_not_utf8_has_no_value() -> None:
    values = pa.array([b"a kite \xff", b"a kite"], pa.binary())
    feature = get_signal("caption_sha256").feature("nfc")
    got = feature.spec.values(CaptionBatch(values), feature).to_pylist()
    assert got == [None, hashlib.sha256(b"a kite").digest()]


def test_clean_removes_exactly_the_listed_captions_and_leaks_none(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    listing = _list(tmp_path)
    proc = run(
        ["clean", str(ds), "--out", "rel", "--list", f"{listing}:caption_sha256", "--json", "-q"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_quarantined"]) == (8, 3, 0)
    kept = pq.read_table(tmp_path / "rel" / "part-00000.parquet").to_pydict()
    want = [i for i in range(len(CAPTIONS)) if i not in FLAGGED]
    assert kept["caption"] == [CAPTIONS[i] for i in want]
    assert kept["url"] == [URLS[i] for i in want]
    # Containment: no flagged caption (either spelling) anywhere expunge wrote or printed.
    needles = [c.encode() for c in {*LISTED, DECOMPOSED}]
    outputs = proc.stdout.encode() + proc.stderr.encode()
    for path in [*(tmp_path / "rel").rglob("*"), *(tmp_path / ".expunge").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, path
    for needle in needles:
        assert needle not in outputs


def test_another_caption_column_reindexes(tmp_path: Path) -> None:
    """The index holds caption digests of one column: naming another one must not reuse them."""
    ds = tmp_path / "ds"
    ds.mkdir()
    swapped = list(reversed(CAPTIONS))
    table = pa.table({"url": URLS, "caption": CAPTIONS, "alt_text": swapped})
    pq.write_table(table, ds / "part-00000.parquet")
    lists = [f"{_list(tmp_path)}:caption_sha256"]
    first = api.clean(
        [str(ds)], tmp_path / "a", lists=lists, opts=api.Options(store=tmp_path / "st", workers=1)
    )
    second = api.clean(
        [str(ds)],
        tmp_path / "b",
        banks=["captions"],
        opts=api.Options(store=tmp_path / "st", workers=1, caption_column="alt_text"),
    )
    assert first["rows_removed"] == second["rows_removed"] == 3
    kept = pq.read_table(tmp_path / "b" / "part-00000.parquet").column("alt_text").to_pylist()
    assert kept == [swapped[i] for i in range(len(swapped)) if len(swapped) - 1 - i not in FLAGGED]


def test_a_dataset_without_a_caption_column_is_refused_in_one_line(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", caption=False)
    proc = run(
        ["clean", str(ds), "--out", "rel", "--list", f"{_list(tmp_path)}:caption_sha256", "-q"], tmp_path
    )
    assert_one_line_error(proc, "caption lists (captions) need a caption column", str(ds))
    assert not (tmp_path / "rel" / "part-00000.parquet").exists()
