"""Tests for the synthetic benign data generator that the demo, the other tests and the benchmarks rely on.

The generator's promises are ground truth for everyone else's assertions, so they are checked here
against an independent, deliberately plain Safe Browsing canonicaliser rather than against the
generator's own bookkeeping.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.demo.synth import (
    HEADER_COMMENT,
    LIST_NAMES,
    SCHEMA,
    FlaggedRow,
    SynthDataset,
    _check_pools,
    generate_dataset,
    random_digests,
    write_digest_list,
    write_lists,
)

ROWS, SHARDS, FLAGGED, GROUP, DECOYS = 6_000, 3, 120, 700, 250
GEN_ARGS = {"rows": ROWS, "shards": SHARDS, "seed": 7, "flagged": FLAGGED, "row_group_size": GROUP}

# ---------------------------------------------------------------------------------------------------
# An independent reference canonicaliser (Safe Browsing v4 "URLs and Hashing"), IP forms left out.

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def sb_canonical(url: str | bytes) -> str:
    raw = url.encode("utf-8") if isinstance(url, str) else url
    raw = raw.strip(b" \t\r\n")
    raw = re.sub(rb"[\t\r\n]", b"", raw)
    raw = raw.split(b"#", 1)[0]
    while True:
        unescaped = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
        if unescaped == raw:
            break
        raw = unescaped
    m = re.match(rb"^([A-Za-z][A-Za-z0-9+.-]*)://", raw)
    scheme, rest = (m.group(1).lower(), raw[m.end() :]) if m else (b"http", raw)
    cut = min([i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0] or [len(rest)])
    host, tail = rest[:cut], rest[cut:]
    host = re.sub(rb":\d*$", b"", host).strip(b".")
    host = re.sub(rb"\.{2,}", b".", host).lower()
    path, mark, query = tail.partition(b"?")
    path = re.sub(rb"/+", b"/", path if path.startswith(b"/") else b"/" + path)
    segments = path.split(b"/")[1:]
    out: list[bytes] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg in (b".", b".."):
            if seg == b".." and out:
                out.pop()
            if last:
                out.append(b"")
        else:
            out.append(seg)
    whole = scheme + b"://" + host + b"/" + b"/".join(out) + mark + query
    return "".join(f"%{b:02X}" if b <= 0x20 or b >= 0x7F or b in b"#%" else chr(b) for b in whole)


# A string already in canonical shape: lower-case host, no port/fragment/dot segments/double slashes,
# escapes only upper-case and only for bytes that must stay escaped.
_ESC = r"%(?:[01][0-9A-F]|20|23|25|7F|[89A-F][0-9A-F])"
_SEGMENT_CHAR = rf"(?:[!-\"$&-.0->@-~]|{_ESC})"  # printable but not # % / ?
_SEGMENT = rf"(?!\.\.?(?:[/?]|$)){_SEGMENT_CHAR}+"  # not empty, not "." or ".."
_QUERY_CHAR = rf"(?:[!-\"$&-~]|{_ESC})"  # printable but not # %
CANONICAL_SHAPE = re.compile(
    rf"^https?://[a-z0-9-]+(?:\.[a-z0-9-]+)+"
    rf"/(?:{_SEGMENT}(?:/{_SEGMENT})*/?)?"
    rf"(?:\?{_QUERY_CHAR}*)?$"
)


def is_canonical_shape(url: str) -> bool:
    return CANONICAL_SHAPE.match(url) is not None


def reserved_host(host: str) -> bool:
    return host.endswith((".example", ".test", ".example.net", ".invalid"))


# ---------------------------------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> SynthDataset:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "data", **GEN_ARGS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lists(ds: SynthDataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_lists(ds, tmp_path_factory.mktemp("lists"), seed=3, decoys=DECOYS)


@pytest.fixture(scope="module")
def urls(ds: SynthDataset) -> dict[str, list[bytes | None]]:
    """Stored URL bytes per shard name, read as binary so non-UTF-8 rows survive."""
    return {
        p.name: pq.read_table(p, columns=["URL"]).column("URL").cast(pa.binary()).to_pylist()
        for p in ds.shards
    }


def stored(urls: dict[str, list[bytes | None]], f: FlaggedRow) -> bytes:
    value = urls[f.shard][f.row]
    assert value is not None
    return value


def http_rows(urls: dict[str, list[bytes | None]]) -> list[tuple[str, int, bytes]]:
    """(shard, row, stored bytes) of every row that is not a quarantine case."""
    return [
        (shard, row, value)
        for shard, values in urls.items()
        for row, value in enumerate(values)
        if value is not None and quarantine_kind(value) is None
    ]


def quarantine_kind(value: bytes | None) -> str | None:
    if value is None:
        return "null"
    if value == b"":
        return "empty"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "not-utf8"
    lowered = text.strip().lower()
    if lowered.startswith("data:"):
        return "data-uri"
    if not lowered.startswith(("http://", "https://")):
        return "no-host"
    return None


# ---------------------------------------------------------------------------------------------------
# The reference canonicaliser itself.


def test_reference_canonicaliser_agrees_with_safe_browsing_examples(shared_dir: Path) -> None:
    cases = json.loads((shared_dir / "testdata" / "url" / "safebrowsing.json").read_text())["canonicalize"]
    checked = 0
    for case in cases:
        if re.match(r"^http://\d+/", case["input"]):
            continue  # integer IP forms are out of this helper's scope
        value = case["input"].encode("latin-1") if case.get("input_is_bytes") else case["input"]
        assert sb_canonical(value) == case["canonical"], case
        checked += 1
    assert checked >= 30


def test_canonical_shape_regex_implies_fixed_point(
    ds: SynthDataset, urls: dict[str, list[bytes | None]]
) -> None:
    for _, _, value in http_rows(urls):
        text = value.decode()
        if is_canonical_shape(text):
            assert sb_canonical(text) == text, text
    for bad in (
        "http://A.example/x",
        "http://a.example:80/x",
        "http://a.example/x#f",
        "http://a.example//x",
        "http://a.example/./x",
        "http://a.example/%61",
        "http://a.example/%c3%a9",
        "http://a.example",
    ):
        assert not is_canonical_shape(bad), bad
    assert is_canonical_shape("https://cdn3.shop-images.example/caf%C3%A9-1234567890.jpg?v=1571234")


# ---------------------------------------------------------------------------------------------------
# Dataset layout.


def test_pools_keep_the_uniqueness_argument() -> None:
    _check_pools()


def test_same_arguments_give_byte_identical_files(
    tmp_path: Path, ds: SynthDataset, lists: dict[str, Path]
) -> None:
    again = generate_dataset(tmp_path / "again", **GEN_ARGS)  # type: ignore[arg-type]
    assert [p.name for p in again.shards] == [p.name for p in ds.shards]
    for a, b in zip(ds.shards, again.shards, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert again.flagged == ds.flagged and again.quarantine_rows == ds.quarantine_rows
    again_lists = write_lists(again, tmp_path / "lists", seed=3, decoys=DECOYS)
    for name in LIST_NAMES:
        assert lists[name].read_bytes() == again_lists[name].read_bytes()
    other = generate_dataset(tmp_path / "other", **{**GEN_ARGS, "seed": 8})  # type: ignore[arg-type]
    assert other.shards[0].read_bytes() != ds.shards[0].read_bytes()


def test_schema_rows_row_groups_and_metadata(ds: SynthDataset) -> None:
    assert [p.name for p in ds.shards] == [f"part-{i:05d}.parquet" for i in range(SHARDS)]
    assert ds.rows == ROWS and ds.root == ds.shards[0].parent
    ids: list[int] = []
    for path in ds.shards:
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == ROWS // SHARDS
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sizes == [GROUP] * (ROWS // SHARDS // GROUP) + [ROWS // SHARDS % GROUP]
        assert meta.row_group(0).column(1).compression == "ZSTD"
        table = pq.read_table(path)
        assert table.schema.names == [
            "SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW",
            "similarity", "punsafe", "pwatermark", "hash",
        ]  # fmt: skip
        assert table.schema.equals(SCHEMA, check_metadata=False)
        kv = table.schema.metadata
        assert kv[b"expunge.synthetic"] == b"true" and kv[b"generator"] == b"expunge.synth"
        assert table.column("TEXT").null_count == 0
        assert set(table.column("NSFW").to_pylist()) <= {"UNLIKELY", "UNSURE", "NSFW"}
        licenses = Counter(table.column("LICENSE").to_pylist())
        assert licenses["?"] > 0.9 * table.num_rows
        assert min(table.column("similarity").to_pylist()) >= 0.28
        assert min(table.column("HEIGHT").to_pylist()) > 0 and min(table.column("WIDTH").to_pylist()) > 0
        ids.extend(table.column("SAMPLE_ID").to_pylist())
    assert len(set(ids)) == ROWS


def test_rows_spread_evenly_and_progress_reports_every_row_group(tmp_path: Path) -> None:
    seen: list[int] = []
    small = generate_dataset(
        tmp_path, rows=1_003, shards=4, flagged=9, row_group_size=100, progress=seen.append
    )
    counts = [pq.ParquetFile(p).metadata.num_rows for p in small.shards]
    assert counts == [251, 251, 251, 250]
    assert sum(seen) == 1_003 and max(seen) == 100 and len(seen) == 4 * 3
    assert small.quarantine_rows == 5  # every kind appears even when 0.1 % would round to one


def test_more_shards_than_rows_and_no_flagged(tmp_path: Path) -> None:
    tiny = generate_dataset(tmp_path, rows=3, shards=5, flagged=0)
    assert [pq.ParquetFile(p).metadata.num_rows for p in tiny.shards] == [1, 1, 1, 0, 0]
    assert tiny.flagged == [] and tiny.quarantine_rows == 3


@pytest.mark.parametrize(
    "kwargs", [{"rows": -1}, {"shards": 0}, {"flagged": 11, "rows": 10}, {"row_group_size": 0}]
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# URLs.


def test_urls_are_mostly_canonical_unique_and_on_reserved_hosts(
    ds: SynthDataset, urls: dict[str, list[bytes | None]]
) -> None:
    texts = [value.decode() for _, _, value in http_rows(urls)]
    shaped = sum(is_canonical_shape(t) for t in texts)
    assert shaped >= 0.9 * ROWS
    not_fixed = sum(sb_canonical(t) != t for t in texts)
    assert not_fixed - sum(f.variant for f in ds.flagged) == round(ROWS * 0.02)
    canonical = [sb_canonical(t) for t in texts]
    assert len(set(canonical)) == len(canonical), "two rows share a canonical URL"
    hosts = {c.split("/")[2] for c in canonical}
    assert len(hosts) > 50 and all(reserved_host(h) for h in hosts)
    assert any(t.startswith("http://") for t in texts) and any(t.startswith("https://") for t in texts)
    joined = "\n".join(texts)
    for needle in ("%20", "%C3%A9", "?v=", "-300x200", "/wp-content/uploads/"):
        assert needle in joined


def test_quarantine_count_is_exact_and_every_kind_appears(
    ds: SynthDataset, urls: dict[str, list[bytes | None]]
) -> None:
    kinds = Counter(k for values in urls.values() for v in values if (k := quarantine_kind(v)) is not None)
    assert sum(kinds.values()) == ds.quarantine_rows == round(ROWS * 0.001)
    assert set(kinds) == {"null", "empty", "data-uri", "no-host", "not-utf8"}
    table = pq.read_table(ds.shards[0])
    assert table.schema.field("URL").type == pa.string()


# ---------------------------------------------------------------------------------------------------
# Flagged rows and lists.


def test_flagged_rows_spread_split_and_never_quarantined(
    ds: SynthDataset, urls: dict[str, list[bytes | None]]
) -> None:
    assert len(ds.flagged) == FLAGGED == len(set(ds.flagged))
    assert Counter(f.shard for f in ds.flagged) == {p.name: FLAGGED // SHARDS for p in ds.shards}
    per_list = Counter(f.list_name for f in ds.flagged)
    assert per_list == dict.fromkeys(LIST_NAMES, FLAGGED // 4)
    for name in LIST_NAMES:
        variants = sum(f.variant for f in ds.flagged if f.list_name == name)
        assert variants == (round(FLAGGED / 4 / 3) if name in ("c3p", "urls") else 0)
    assert ds.flagged == sorted(ds.flagged, key=lambda f: (f.shard, f.row))
    for f in ds.flagged:
        value = stored(urls, f)
        assert quarantine_kind(value) is None
        assert value == ds.listed[f].raw
    assert "listed" not in repr(ds)


def test_variants_differ_from_listed_form_and_canonicalise_back(
    ds: SynthDataset, urls: dict[str, list[bytes | None]]
) -> None:
    edits: Counter[str] = Counter()
    for f in ds.flagged:
        raw, canonical = stored(urls, f), ds.listed[f].canonical
        assert sb_canonical(raw) == canonical
        assert is_canonical_shape(canonical)
        if f.variant:
            text = raw.decode()
            assert text != canonical
            edits.update(
                {
                    "case": text.strip().split("/")[2] != canonical.split("/")[2]
                    or not text.strip().startswith(("http:", "https:")),
                    "port": ":80/" in text or ":443/" in text,
                    "fragment": "#" in text,
                    "dots": "/./" in text or "/../" in text,
                    "escape": bool(re.search(r"%[46][0-9A-Fa-f]|%[57][0-9Aa]", text)),
                    "spaces": text != text.strip(),
                }
            )
        else:
            assert raw.decode() == canonical
    assert all(edits[k] for k in ("case", "port", "fragment", "dots", "escape", "spaces")), edits


def test_lists_catch_exactly_the_flagged_rows(
    ds: SynthDataset, lists: dict[str, Path], urls: dict[str, list[bytes | None]]
) -> None:
    assert set(lists) == set(LIST_NAMES)
    with open(lists["iwf"], newline="", encoding="utf-8") as fh:
        iwf_rows = list(csv.DictReader(fh))
    iwf = {r["md5"] for r in iwf_rows}
    tx_lines = lists["tx"].read_text().splitlines()
    tx = {line.split(" ")[1] for line in tx_lines}
    c3p = {
        line for line in lists["c3p"].read_text(encoding="utf-8-sig").splitlines() if line and line[0] != "#"
    }
    listed_urls = {line for line in lists["urls"].read_text().splitlines() if line and line[0] != "#"}

    n = FLAGGED // 4
    assert len(iwf_rows) == len(iwf) == n + DECOYS and len(tx) == n + DECOYS
    assert len(c3p) == n + DECOYS and len(listed_urls) == n + DECOYS

    caught: dict[str, set[FlaggedRow]] = {name: set() for name in LIST_NAMES}
    for shard, row, value in http_rows(urls):
        f = FlaggedRow(shard, row, "", False)
        canonical = sb_canonical(value)
        if hashlib.md5(value).hexdigest() in iwf:
            caught["iwf"].add(f)
        if hashlib.md5(value).hexdigest() in tx:
            caught["tx"].add(f)
        if hashlib.sha1(canonical.encode()).hexdigest() in c3p:
            caught["c3p"].add(f)
        if canonical in listed_urls:
            caught["urls"].add(f)
    for name in LIST_NAMES:
        expected = {FlaggedRow(f.shard, f.row, "", False) for f in ds.flagged if f.list_name == name}
        assert caught[name] == expected, name
    decoy_hosts = {u.split("/")[2] for u in listed_urls}
    assert any(h.endswith(".invalid") for h in decoy_hosts) and all(reserved_host(h) for h in decoy_hosts)


def test_list_files_have_the_documented_shapes(lists: dict[str, Path]) -> None:
    iwf = lists["iwf"].read_text()
    assert iwf.startswith("md5,id,category\n") and "\r" not in iwf
    body = [line.split(",") for line in iwf.splitlines()[1:]]
    assert [int(r[1]) for r in body] == list(range(1, len(body) + 1))
    assert all(re.fullmatch(r"[0-9a-f]{32}", r[0]) and r[2].startswith("synthetic-") for r in body)

    raw = lists["c3p"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf# SYNTHETIC list of hashes of benign generated URLs")
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
    lines = raw[3:].decode().split("\r\n")[:-1]
    first_hash = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    middle = lines[first_hash:]
    assert "" in middle and middle[middle.index("") + 1].startswith("# ")
    assert all(re.fullmatch(r"[0-9a-f]{40}", line) for line in middle if line and line[0] != "#")

    tx = lists["tx"].read_text()
    assert all(re.fullmatch(r"url_md5 [0-9a-f]{32}", line) for line in tx.splitlines())

    urls = lists["urls"].read_text()
    assert urls.startswith("# SYNTHETIC list of benign generated URLs")
    assert all(is_canonical_shape(line) for line in urls.splitlines() if not line.startswith("#"))


def test_write_lists_needs_recorded_forms(ds: SynthDataset, tmp_path: Path) -> None:
    bare = SynthDataset(ds.root, ds.shards, ds.rows, ds.flagged, ds.quarantine_rows)
    with pytest.raises(ValueError):
        write_lists(bare, tmp_path)


# ---------------------------------------------------------------------------------------------------
# Digest banks.


def test_random_digests_are_fast_deterministic_and_full_width(tmp_path: Path) -> None:
    bank = random_digests(1_000_000, 16, seed=1)
    assert bank.shape == (1_000_000,) and bank.dtype == np.dtype("S16")
    assert bank.tobytes() == random_digests(1_000_000, 16, seed=1).tobytes()
    assert bank.tobytes() != random_digests(1_000_000, 16, seed=2).tobytes()
    path = write_digest_list(tmp_path / "bank.txt", bank, "plain")
    lines = path.read_text().splitlines()
    assert lines[: len(HEADER_COMMENT.splitlines())] == [f"# {c}" for c in HEADER_COMMENT.splitlines()]
    hexes = [line for line in lines if not line.startswith("#")]
    assert len(hexes) == 1_000_000 and "".join(hexes) == bank.tobytes().hex()


@settings(max_examples=25, deadline=None)
@given(
    digests=st.lists(st.binary(min_size=20, max_size=20), max_size=30),
    fmt=st.sampled_from(["plain", "csv", "pytx"]),
    as_array=st.booleans(),
)
def test_write_digest_list_round_trips(
    tmp_path_factory: pytest.TempPathFactory, digests: list[bytes], fmt: str, as_array: bool
) -> None:
    path = tmp_path_factory.mktemp("dl") / "list"
    value = np.array(digests, dtype="S20") if as_array else digests
    write_digest_list(path, value, fmt, signal="url_sha1")
    text = path.read_text()
    if fmt == "plain":
        got = [line for line in text.splitlines() if not line.startswith("#")]
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["sha1", "id", "category"]
        got = [r[0] for r in rows[1:]]
    else:
        got = [line.removeprefix("url_sha1 ") for line in text.splitlines()]
    assert got == [d.hex() for d in digests]


def test_write_digest_list_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_digest_list(tmp_path / "x", [b"\x00" * 16], "xml")
