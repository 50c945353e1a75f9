"""Index features: quarantine codes and per-row digests, checked against hashlib over the scalar recipes."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.features.digest import as_binary, digest_array
from expunge.features.url import (
    Q_EMPTY,
    Q_NOT_UTF8,
    Q_NULL,
    Q_OK,
    Q_UNPARSEABLE,
    QUARANTINE_REASONS,
    UrlBatch,
)
from expunge.features.urlcanon import canonicalize, expressions, host_suffixes, stripped

ALGOS = ("md5", "sha1", "sha256")
WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}


def string_array(values: list[bytes | None], large: bool = False) -> pa.Array:
    """A string array holding exactly these bytes, valid UTF-8 or not (built from buffers)."""
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v or b""))
    data = b"".join(v or b"" for v in values)
    validity = np.packbits(np.array([v is not None for v in values], dtype=bool), bitorder="little").tobytes()
    off_type = np.int64 if large else np.int32
    return pa.Array.from_buffers(
        pa.large_string() if large else pa.string(),
        len(values),
        [
            pa.py_buffer(validity),
            pa.py_buffer(np.array(offsets, dtype=off_type).tobytes()),
            pa.py_buffer(data),
        ],
        null_count=sum(v is None for v in values),
    )


def _digest(algo: str, value: bytes | None) -> bytes | None:
    return None if value is None else hashlib.new(algo, value).digest()


def _expected_code(raw: bytes | None) -> int:
    if raw is None:
        return Q_NULL
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return Q_NOT_UTF8
    canon = canonicalize(raw)
    if canon is None:
        return Q_EMPTY if not raw.strip() else Q_UNPARSEABLE
    # A canonical host without a dot ("not a url" -> "not%20a%20url") names no web site.
    host = canon.split(b"/")[2]
    return Q_OK if b"." in host else Q_UNPARSEABLE


# ------------------------------------------------------------------------------------------------
# quarantine
# ------------------------------------------------------------------------------------------------

CASES: list[tuple[bytes | None, int]] = [
    (b"http://river.example/a.jpg", Q_OK),
    (b"HTTPS://Stone.Example:443/x/../y?q=1#frag", Q_OK),
    (b"meadow.example/path", Q_OK),
    (b"  http://cloud.example/padded  ", Q_OK),
    (None, Q_NULL),
    (b"", Q_EMPTY),
    (b"   ", Q_EMPTY),
    (b" \t\r\n\x0b\x0c ", Q_EMPTY),
    (b"http://harbor.example/\xff\xfe.jpg", Q_NOT_UTF8),
    (b"\xc3\x28", Q_NOT_UTF8),
    (b"  \xff  ", Q_NOT_UTF8),
    (b"data:image/png;base64,AAAA", Q_UNPARSEABLE),
    (b"data:text/plain,neutral", Q_UNPARSEABLE),
    (b"javascript:void(0)", Q_UNPARSEABLE),
    (b"ftp://lantern.example/file", Q_UNPARSEABLE),
    (b"http://", Q_UNPARSEABLE),
    (b"mailto:someone@maple.example", Q_UNPARSEABLE),
    (b"not a url", Q_UNPARSEABLE),
    (b"http://localhost/x", Q_UNPARSEABLE),
    (b"river", Q_UNPARSEABLE),
    (b"http://.../", Q_UNPARSEABLE),
]


@pytest.mark.parametrize("large", [False, True])
def test_quarantine_codes(large: bool) -> None:
    values = [v for v, _ in CASES]
    batch = UrlBatch(string_array(values, large))
    assert len(batch) == len(CASES)
    q = batch.quarantine
    assert q.dtype == np.uint8
    assert q.tolist() == [code for _, code in CASES]
    assert q.tolist() == [_expected_code(v) for v in values]
    assert set(QUARANTINE_REASONS) == {Q_NULL, Q_EMPTY, Q_NOT_UTF8, Q_UNPARSEABLE}


def test_quarantine_on_binary_chunked_and_sliced_input() -> None:
    values = [v for v, _ in CASES]
    codes = [c for _, c in CASES]
    binary = pa.array(values, pa.binary())
    assert UrlBatch(binary).quarantine.tolist() == codes
    assert UrlBatch(pa.array(values, pa.large_binary())).quarantine.tolist() == codes
    chunked = pa.chunked_array([binary.slice(0, 5), binary.slice(5)])
    assert UrlBatch(chunked).quarantine.tolist() == codes
    assert UrlBatch(string_array(values).slice(3, 9)).quarantine.tolist() == codes[3:12]


def test_all_null_and_empty_batches() -> None:
    assert UrlBatch(pa.nulls(3)).quarantine.tolist() == [Q_NULL] * 3
    assert UrlBatch(pa.nulls(3)).feature("url:raw:md5").to_pylist() == [None] * 3
    assert UrlBatch(pa.array([None, None], pa.string())).quarantine.tolist() == [Q_NULL] * 2
    empty = UrlBatch(pa.array([], pa.string()))
    assert len(empty) == 0 and empty.quarantine.tolist() == []
    assert len(empty.feature("url:canonical:sha1")) == 0
    assert empty.feature("domain:sha256").to_pylist() == []


# ------------------------------------------------------------------------------------------------
# URL digest features
# ------------------------------------------------------------------------------------------------

URLS: list[bytes | None] = [v for v, _ in CASES] + [
    b"http://river.example/%7Euser/%2541?x=1&y=%20",
    b"http://a.b.c.d.e.f.stone.example/1/2/3/4/5.html?q",
    b"http://192.168.1.1/x",
    b"http://3279880203/y",
    b"//cdn.meadow.example/img.png",
    b"http://User@Lantern.Example:8080/Path/File.JPG",
    b"http://xn--nxasmq6b.example/",
    "http://\u00fcber.example/caf\u00e9".encode(),
]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("recipe", ["raw", "stripped", "canonical"])
def test_url_features_equal_hashlib_over_scalar_recipes(algo: str, recipe: str) -> None:
    reference = {"raw": lambda v: v, "stripped": stripped, "canonical": canonicalize}[recipe]
    batch = UrlBatch(string_array(URLS))
    out = batch.feature(f"url:{recipe}:{algo}")
    assert out.type == pa.binary(WIDTH[algo])
    expected = [None if v is None else _digest(algo, reference(v)) for v in URLS]
    assert out.to_pylist() == expected
    if recipe == "raw":
        assert out.null_count == 1
    # The recipe arrays themselves hold exactly the scalar results.
    recipe_values = batch.recipe(recipe).to_pylist()
    assert recipe_values == [None if v is None else reference(v) for v in URLS]


def test_every_row_without_a_canonical_url_is_quarantined() -> None:
    batch = UrlBatch(string_array(URLS))
    canonical_null = batch.feature("url:canonical:md5").is_null().to_pylist()
    assert canonical_null == [v is None or canonicalize(v) is None for v in URLS]
    q = batch.quarantine
    for is_null, code in zip(canonical_null, q.tolist(), strict=True):
        if is_null:
            assert code != Q_OK
        if code == Q_OK:
            assert not is_null


@pytest.mark.parametrize(
    ("feature", "expand"), [("url_expr:sha256", expressions), ("domain:sha256", host_suffixes)]
)
def test_multi_valued_features(feature: str, expand: object) -> None:
    out = UrlBatch(string_array(URLS)).feature(feature)
    assert out.type == pa.list_(pa.binary(32))
    got = out.to_pylist()
    for raw, digests in zip(URLS, got, strict=True):
        canon = None if raw is None else canonicalize(raw)
        if canon is None:
            assert digests is None
            continue
        items = expand(canon)  # type: ignore[operator]
        assert digests == [hashlib.sha256(e).digest() for e in items]
        # The row's own expansions, from the raw URL, are the same (canonicalisation is idempotent).
        assert items == expand(raw)  # type: ignore[operator]
        assert len(items) >= 1


def test_multi_valued_feature_examples() -> None:
    out = UrlBatch(pa.array(["http://a.b.river.example/1/2.html?q=3", "data:x", None])).feature(
        "domain:sha256"
    )
    hosts = [b"a.b.river.example", b"b.river.example", b"river.example"]
    assert out.to_pylist() == [[hashlib.sha256(h).digest() for h in hosts], None, None]
    expr = UrlBatch(pa.array(["http://a.b.river.example/1/2.html?q=3"])).feature("url_expr:sha256")
    got = expr.to_pylist()[0]
    for e in (b"a.b.river.example/1/2.html?q=3", b"river.example/", b"b.river.example/1/"):
        assert hashlib.sha256(e).digest() in got


def test_unknown_feature_and_recipe() -> None:
    batch = UrlBatch(pa.array(["http://river.example/"]))
    with pytest.raises(KeyError):
        batch.feature("image:pdq")
    with pytest.raises(KeyError):
        batch.recipe("lowercase")
    with pytest.raises(KeyError):
        batch.feature("url:lowercase:md5")


# ------------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------------

_LABEL = st.sampled_from(
    ["river", "stone", "cloud", "Maple", "a", "b-c", "x_y", "123", "0x1f", "\u00fcber", ""]
)
_HOST = st.lists(_LABEL, min_size=0, max_size=4).map(lambda ls: ".".join([*ls, "example"]))
_PIECE = st.sampled_from(
    ["/", "a", "..", ".", "//", "%2e", "%25", "%41", "%7e", "%", "%zz", " ", "\t", "#", "?", "&", "=", ";",
     "\u00e9", "\u3000", "@", ":", "%00", "~", "+", "%20", "\\"]
)  # fmt: skip
_URL = st.builds(
    lambda pad1, scheme, user, host, port, path, pad2: (
        pad1 + scheme + user + host + port + path + pad2
    ).encode(),
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(["http://", "https://", "HTTP://", "", "//", "ftp://", "data:", "javascript:"]),
    st.sampled_from(["", "user@", "u:p@"]),
    _HOST,
    st.sampled_from(["", ":80", ":8080", ":", ":x"]),
    st.lists(_PIECE, max_size=10).map("".join),
    st.sampled_from(["", " ", "\n"]),
)
_RAW = st.one_of(_URL, st.binary(max_size=40), st.text(max_size=20).map(str.encode), st.none())
_RAW = st.one_of(_RAW, st.tuples(_URL, st.binary(min_size=1, max_size=3)).map(lambda t: t[0] + t[1]))


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_RAW, max_size=20), large=st.booleans())
def test_features_agree_with_scalar_reference(values: list[bytes | None], large: bool) -> None:
    batch = UrlBatch(string_array(values, large))
    assert batch.quarantine.tolist() == [_expected_code(v) for v in values]
    canon = [None if v is None else canonicalize(v) for v in values]
    strip = [None if v is None else stripped(v) for v in values]
    assert batch.feature("url:raw:sha1").to_pylist() == [_digest("sha1", v) for v in values]
    assert batch.feature("url:canonical:md5").to_pylist() == [_digest("md5", c) for c in canon]
    assert batch.feature("url:stripped:sha256").to_pylist() == [_digest("sha256", s) for s in strip]
    assert batch.feature("domain:sha256").to_pylist() == [
        None if c is None else [hashlib.sha256(h).digest() for h in host_suffixes(c)] for c in canon
    ]


# ------------------------------------------------------------------------------------------------
# digest_array
# ------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.just(b""), st.binary(max_size=300)), max_size=40),
    algo=st.sampled_from(ALGOS),
    kind=st.sampled_from(["binary", "large_binary", "string", "large_string"]),
    offset=st.integers(0, 3),
)
def test_digest_array_equals_hashlib(values: list[bytes | None], algo: str, kind: str, offset: int) -> None:
    padded = [b"pad"] * offset + values
    if kind in ("string", "large_string"):
        arr = string_array(padded, large=kind == "large_string")
    else:
        arr = pa.array(padded, pa.binary() if kind == "binary" else pa.large_binary())
    arr = arr.slice(offset)
    out = digest_array(arr, algo)
    assert out.type == pa.binary(WIDTH[algo])
    assert len(out) == len(values)
    assert out.to_pylist() == [_digest(algo, v) for v in values]


@pytest.mark.parametrize("algo", ALGOS)
def test_digest_array_edge_values(algo: str) -> None:
    values = [b"", None, b"\x00", b"\x00" * 100, b"\xff" * 1000, bytes(range(256)) * 20, "caf\u00e9".encode()]
    assert digest_array(pa.array(values, pa.binary()), algo).to_pylist() == [_digest(algo, v) for v in values]
    assert digest_array(pa.array([], pa.binary()), algo).type == pa.binary(WIDTH[algo])
    assert digest_array(pa.nulls(2, pa.binary()), algo).to_pylist() == [None, None]
    assert digest_array(pa.nulls(2), algo).to_pylist() == [None, None]


def test_as_binary_is_a_zero_copy_view() -> None:
    arr = string_array([b"http://river.example/", b"\xff"])
    view = as_binary(arr)
    assert view.type == pa.binary()
    assert view.buffers()[2].address == arr.buffers()[2].address
    assert as_binary(string_array([b"x"], large=True)).type == pa.large_binary()
    binary = pa.array([b"x"], pa.binary())
    assert as_binary(binary) is binary
