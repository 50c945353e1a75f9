"""Packages and the hotline's match as properties: whatever the digests, a query reads back as written,
and an answer holds exactly the query's digests that a list holds (PDQ: within the threshold), never a
list value the query did not hold."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.features.images import hamming
from expunge.proxy import package as pkg
from expunge.proxy.answer import HotlineList, match
from expunge.proxy.query import open_query, query_parts, value_schema

digests16 = st.lists(st.binary(min_size=16, max_size=16), max_size=40)


def make_query(folder: Path, parts: dict[pkg.Part, list[bytes]]) -> Path:
    """A query package laid out as export_query writes it (without a dataset behind it)."""
    with pkg.staged(folder) as stage:
        entries = []
        for p, raw in parts.items():
            values = np.array(sorted(set(raw)), dtype=f"S{p.width}")
            table = pa.table({"value": pkg.binary_array(values, p.width)}, schema=value_schema(p.width))
            pkg.write_table(stage / p.file, table)
            entry = {"signal": p.signal, "recipe": p.recipe, "feature": p.feature, "width": p.width}
            entries.append({**entry, "count": len(values), **pkg.file_entry(stage / p.file)})
        manifest = {
            "format": pkg.QUERY_FORMAT,
            "format_version": pkg.FORMAT_VERSION,
            "package_id": pkg.new_id(),
            "dataset_id": "synthetic-000000000000",
            "tool_version": "test",
            "signals": entries,
        }
        pkg.write_manifest(stage, pkg.QUERY_MANIFEST, manifest, None, "")
    return folder


@settings(max_examples=30, deadline=None)
@given(md5=digests16, sha1=st.lists(st.binary(min_size=20, max_size=20), max_size=40))
def test_query_package_round_trip(md5: list[bytes], sha1: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parts = {pkg.Part("url_md5", "raw"): md5, pkg.Part("url_sha1", "canonical"): sha1}
        q = make_query(Path(tmp) / "Q", parts)
        got = {
            p: [bytes(v).ljust(p.width, b"\0") for v in values] for p, values in query_parts(open_query(q))
        }
        assert got == {p: sorted(set(v)) for p, v in parts.items()}


@settings(max_examples=30, deadline=None)
@given(query=digests16, listed=digests16, shared=digests16)
def test_exact_answer_is_the_intersection_and_nothing_else(
    query: list[bytes], listed: list[bytes], shared: list[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        q = make_query(base / "Q", {pkg.Part("url_md5", "raw"): query + shared})
        lst = base / "list.txt"
        lst.write_text("# SYNTHETIC\n" + "".join(v.hex() + "\n" for v in listed + shared))
        if not listed + shared:
            return
        res = match(q, [HotlineList(lst, "url_md5", None)], base / "A")
        table = pq.read_table(base / "A" / "url_md5-raw.parquet")
        answered = table.column("value").to_pylist()
        assert sorted(set(answered)) == answered
        assert set(answered) == set(query + shared) & set(listed + shared)
        assert res.matched["url_md5:raw"] == len(answered)
        assert table.column("distance").null_count == table.num_rows


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    flips=st.lists(st.integers(0, 60), min_size=1, max_size=12),
    threshold=st.integers(0, 40),
)
def test_pdq_answer_is_every_query_hash_within_the_threshold(
    seed: int, flips: list[int], threshold: int
) -> None:
    rng = np.random.default_rng(seed)
    listed = [rng.bytes(32) for _ in flips]
    query = [rng.bytes(32) for _ in range(10)]
    for base_hash, n in zip(listed, flips, strict=True):  # near copies, n bits away
        bits = np.unpackbits(np.frombuffer(base_hash, np.uint8))
        bits[rng.choice(256, size=n, replace=False)] ^= 1
        query.append(np.packbits(bits).tobytes())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        q = make_query(base / "Q", {pkg.Part("pdq", "decoded"): query})
        lst = base / "pdq.txt"
        lst.write_text("".join(f"pdq {v.hex()}\n" for v in listed))
        match(q, [HotlineList(lst, "pdq", None)], base / "A", threshold=threshold)
        table = pq.read_table(base / "A" / "pdq-decoded.parquet")
        got = dict(zip(table.column("value").to_pylist(), table.column("distance").to_pylist(), strict=True))
        want = {}
        for v in set(query):
            d = min(hamming(v, w) for w in listed)
            if d <= threshold:
                want[v] = d
        assert got == want


def test_a_digest_ending_in_nul_bytes_round_trips_into_a_bank(tmp_path: Path) -> None:
    """Regression: numpy drops an element's trailing NUL bytes; the answer's bank list was written from
    such elements, so a digest ending in 0x00 became a short hex value and the import was refused."""
    import hashlib

    from expunge import api
    from expunge.config import RunConfig
    from tests.proxy import removed_rows

    urls = [f"https://nul.example/{i}.jpg" for i in range(2000)]
    hit = next(u for u in urls if hashlib.md5(u.encode()).digest().endswith(b"\0"))
    root = tmp_path / "ds"
    root.mkdir()
    others = [f"https://other.example/{i}.jpg" for i in range(50)]
    pq.write_table(pa.table({"url": [*others, hit]}), root / "part-00000.parquet")
    lst = tmp_path / "list.txt"
    lst.write_text("# SYNTHETIC\n" + hashlib.md5(hit.encode()).hexdigest() + "\n")
    opts = RunConfig(store=tmp_path / "st", workers=1)
    api.proxy_export([str(root)], tmp_path / "Q", signals="url_md5", opts=opts)
    api.proxy_match(tmp_path / "Q", tmp_path / "A", lists=[f"{lst}:url_md5"])
    (bank,) = api.proxy_import(tmp_path / "A", store=opts.store, name="hot").banks
    assert bank.count == 1
    api.clean([str(root)], tmp_path / "CLEAN", banks=["hot"], opts=opts)
    assert removed_rows(opts.store) == {("part-00000.parquet", 50)}
