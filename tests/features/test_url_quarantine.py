"""Quarantine codes without canonicalising every row: the shortcut must give the codes the full path gives.

``UrlBatch.quarantine`` skips canonicalisation for rows ``SURELY_WEB_PATTERN`` proves web-hosted. The
reference here canonicalises every row first (as the index does when a list uses the canonical recipe),
which takes the full path; the two must agree on every input.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expunge.features.url import SURELY_WEB_PATTERN, WEB_HOST_PATTERN, UrlBatch
from expunge.features.urlcanon import canonicalize

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _full(values: list[bytes | None]) -> np.ndarray:
    batch = UrlBatch(pa.array(values, pa.binary()))
    _ = batch.canonical  # a list on the canonical recipe: quarantine reads the canonical form
    return batch.quarantine


def _shortcut(values: list[bytes | None]) -> np.ndarray:
    return UrlBatch(pa.array(values, pa.binary())).quarantine


def _agree(values: list[bytes | None]) -> None:
    assert _full(values).tolist() == _shortcut(values).tolist(), values


# Pieces chosen near the pattern's edges: case, ports, dots, IPv4 look-alikes, escapes, userinfo.
_scheme = st.sampled_from(["http://", "https://", "HTTP://", "Https://", "ftp://", "http:/", "//", ""])
_label = st.text(alphabet="abcXYZ019-_", min_size=0, max_size=6)
_tld = st.sampled_from(["com", "Example", "x1", "0x1f", "1", "255", "a", "", "xn--bcher-kva", "-q", "_"])
_port = st.sampled_from(["", ":", ":80", ":443", ":99999", ":8a", ":80:80"])
_sep = st.sampled_from(["", "/", "?", "#", "/./", "//", "/../", "@", "%2e", "%2F", "\\", " ", "%", ":"])
_tail = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_odd = st.sampled_from(["", " ", "\t", "\x00", "é", "%25", "%41", "@evil.com", "..", "."])


@st.composite
def _urls(draw: st.DrawFn) -> bytes:
    labels = draw(st.lists(_label, min_size=0, max_size=4))
    host = ".".join([*labels, draw(_tld)])
    url = draw(_odd) + draw(_scheme) + host + draw(_port) + draw(_sep) + draw(_tail) + draw(_odd)
    return url.encode("utf-8")


@SETTINGS
@given(st.lists(_urls(), min_size=1, max_size=30))
def test_shortcut_matches_full_canonicalisation(urls: list[bytes]) -> None:
    _agree(list(urls))


@SETTINGS
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=20))
def test_shortcut_matches_on_arbitrary_bytes(urls: list[bytes]) -> None:
    _agree([b"http://" + u for u in urls] + list(urls))


@SETTINGS
@given(_urls())
def test_pattern_implies_a_web_host(url: bytes) -> None:
    """The pattern's promise itself: whatever it accepts canonicalises to a web host."""
    if re.fullmatch(SURELY_WEB_PATTERN.strip("^$").encode(), url) is None:
        return
    canonical = canonicalize(url)
    assert canonical is not None
    assert re.match(WEB_HOST_PATTERN.encode(), canonical), url


def test_crafted_edges() -> None:
    """Inputs that look web-hosted but are not, or the other way round (each an attack on the pattern)."""
    _agree(
        [
            None,
            b"",
            b"   ",
            b"http://a.b/",
            b"http://.com/",  # leading dot: host "com", no web host
            b"http://a..b/",  # dot runs collapse
            b"http://1.2.3.4/",  # IPv4 (not in the pattern; full path)
            b"http://1.2.3.0x4/",
            b"http://a.0x1f/",  # last label reads as a hex number
            b"http://3279880203/",
            b"http://localhost/",
            b"http://a.com:80:80/x",
            b"http://a.com%2F@evil.com/",
            b"http://a.com/%2e%2e/%2e%2e/",
            b"http://user:pw@a.com/",
            b"HTTP://WWW.EXAMPLE.COM:443/A B",
            b"http://a.com/\xff",
            b"http://\xc3\xa9.com/",
            b"http://a.com\t/x",
            b"http://a.com#frag",
            b"http://a.com?q#f",
            b"mailto:a@b.com",
            b"www.example.com/x",
            b"http://a_b.c-d/",
            b"http://-.-/",
        ]
    )


def test_safebrowsing_examples(shared_dir: Path) -> None:
    data: dict[str, Any] = json.loads(
        (shared_dir / "testdata" / "url" / "safebrowsing.json").read_text(encoding="utf-8")
    )
    values = [
        e["input"].encode("latin-1") if e.get("input_is_bytes") else e["input"].encode("utf-8")
        for e in data["canonicalize"]
    ]
    _agree(values)


def test_demo_urls_take_the_shortcut_and_agree(tmp_path: Path) -> None:
    """The demo's realistic URL mix: most rows skip canonicalisation, and the codes are the same."""
    from expunge.demo import synth

    ds = synth.generate_dataset(tmp_path / "d", rows=20_000, shards=1, seed=3, flagged=20)
    import pyarrow.parquet as pq

    urls = pq.read_table(ds.shards[0], columns=["URL"]).column(0).combine_chunks()
    values = urls.cast(pa.binary()).to_pylist()
    _agree(values)
    sure = pc.match_substring_regex(urls.cast(pa.binary()), SURELY_WEB_PATTERN).fill_null(False)
    assert pc.sum(sure).as_py() > 0.9 * len(urls)
