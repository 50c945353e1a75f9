"""Banks: importing hash lists into versioned, sorted binary sets, refusing bad lists as a whole."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.features.urlcanon import canonicalize
from expunge.lists.bank import (
    added_since,
    import_list,
    load_bank,
    load_info,
    read_values,
    values_path,
)
from expunge.store import Store

MARK = "zebrafish7731"  # distinctive neutral token placed on refused lines
WIDTH = {"url_md5": 16, "url_sha1": 20, "url_sha256": 32}
ALGO = {"url_md5": "md5", "url_sha1": "sha1", "url_sha256": "sha256"}


def _digest(signal: str, seed: str) -> bytes:
    return hashlib.new(ALGO[signal], seed.encode()).digest()


def _digests(signal: str, *seeds: str) -> list[bytes]:
    return [_digest(signal, s) for s in seeds]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _hexlist(path: Path, values: list[bytes], header: str = "# synthetic list\n") -> Path:
    return _write(path, header + "".join(v.hex() + "\n" for v in values))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(arr: np.ndarray) -> list[bytes]:
    """Exact bytes of each value (numpy scalars of an ``S`` array drop trailing zero bytes)."""
    w = arr.dtype.itemsize
    raw = np.ascontiguousarray(arr).tobytes()
    return [raw[i : i + w] for i in range(0, len(raw), w)]


def _stored(store: Store, name: str) -> list[bytes]:
    info = load_info(store, name)
    return _rows(read_values(values_path(store.bank_dir(name), info.version), info.width))


def _delta(store: Store, name: str, version: int, kind: str, width: int) -> list[bytes]:
    path = store.bank_dir(name) / "deltas" / f"v{version:04d}.{kind}.parquet"
    return _rows(read_values(path, width))


def _refused(store: Store, path: Path, where: str | None = None, **kwargs: object) -> str:
    with pytest.raises(ExpungeError) as info:
        import_list(store, path, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert err.path == str(path)
    if where is not None:
        assert err.where == where
    text = str(err)
    assert MARK not in text
    return text


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


# ------------------------------------------------------------------------------------------------
# hex digest lists
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", sorted(WIDTH))
def test_hex_list_import(store: Store, tmp_path: Path, signal: str) -> None:
    values = _digests(signal, "a", "b", "c", "b")  # one duplicate
    values[0] = values[0][:-2] + b"\x00\x00"  # trailing zero bytes must survive exactly
    path = _hexlist(tmp_path / "partner.txt", values)
    res = import_list(store, path, signal=signal, source="partner-a", label="2024-01")
    assert (res.name, res.version, res.count, res.added, res.removed, res.unchanged) == (
        "partner",
        1,
        3,
        3,
        0,
        False,
    )
    assert _stored(store, "partner") == sorted(set(values))
    info = load_info(store, "partner")
    assert (info.signal, info.recipe, info.width, info.source) == (signal, "raw", WIDTH[signal], "partner-a")
    assert info.feature == f"url:raw:{ALGO[signal]}"
    assert info.versions[-1]["label"] == "2024-01"
    assert info.versions[-1]["lines"] == 4
    assert info.versions[-1]["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert store.bank_names() == ["partner"]


def test_upper_case_hex_and_pytx_names_the_signal(store: Store, tmp_path: Path) -> None:
    values = _digests("url_sha1", "a", "b")
    text = "".join(f"url_sha1 {v.hex().upper()}\n" for v in values)
    res = import_list(store, _write(tmp_path / "tx.txt", text), name="tx")
    assert res.count == 2
    assert load_info(store, "tx").signal == "url_sha1"
    assert _stored(store, "tx") == sorted(values)


def test_pytx_signal_conflicting_with_the_request(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "tx.txt", f"url_md5 {_digest('url_md5', 'a').hex()}\n")
    text = _refused(store, path, signal="url_sha1")
    assert "url_md5" in text
    assert store.bank_names() == []


def test_csv_list_with_categories(store: Store, tmp_path: Path) -> None:
    a, b, c = _digests("url_md5", "a", "b", "c")
    text = f"id,md5,category\n1,{a.hex()},river\n2,{b.hex()},stone\n3,{c.hex()},river\n4,{a.hex()},\n"
    res = import_list(store, _write(tmp_path / "cats.csv", text), signal="url_md5")
    assert res.count == 3
    info = load_info(store, "cats")
    assert info.versions[-1]["categories"] == {"river": 2, "stone": 1}
    assert info.versions[-1]["format"] == "csv"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (lambda h: h[:-2], "expected 32 hex digits"),  # too short
        (lambda h: h + "ab", "expected 32 hex digits"),  # too long
        (lambda h: h[:-1] + "g", "invalid hex"),
        (lambda h: "0x" + h[2:], "invalid hex"),
        (lambda h: h[:10] + "é" + h[11:], "invalid hex"),
    ],
)
def test_bad_digest_refuses_the_whole_list(store: Store, tmp_path: Path, line: object, reason: str) -> None:
    good = _digests("url_md5", "a", "b", "c")
    bad = line(_digest("url_md5", MARK).hex())  # type: ignore[operator]
    path = _write(tmp_path / "bad.txt", f"# c\n{good[0].hex()}\n\n{bad}\n{good[1].hex()}\n")
    text = _refused(store, path, where="line 4", signal="url_md5")
    assert reason in text
    assert bad not in text
    assert store.bank_names() == []
    assert not store.bank_dir("bad").exists()


def test_mixed_signal_types_refused(store: Store, tmp_path: Path) -> None:
    a, b = _digest("url_md5", "a"), _digest("url_sha1", MARK)
    path = _write(tmp_path / "mixed.txt", f"url_md5 {a.hex()}\nurl_sha1 {b.hex()}\n")
    _refused(store, path, where="line 2")
    assert store.bank_names() == []


def test_refused_reimport_leaves_the_bank_unchanged(store: Store, tmp_path: Path) -> None:
    v1 = _digests("url_sha256", "a", "b")
    import_list(store, _hexlist(tmp_path / "v1" / "bank.txt", v1), name="bank", signal="url_sha256")
    before = _snapshot(store.root / "banks")
    newer = [*_digests("url_sha256", "c", "d"), _digest("url_sha256", MARK)]
    lines = [v.hex() for v in newer]
    lines[2] = lines[2][:-1]  # short digest on line 3
    bad = _write(tmp_path / "v2" / "bank.txt", "\n".join(lines) + "\n")
    _refused(store, bad, where="line 3", name="bank", signal="url_sha256")
    mixed = _write(
        tmp_path / "v3" / "bank.txt",
        f"url_sha256 {newer[0].hex()}\ndomain {newer[1].hex()}\n",
    )
    _refused(store, mixed, where="line 2", name="bank")
    other = _hexlist(tmp_path / "v4" / "bank.txt", _digests("url_md5", "x"))
    assert "url_sha256" in _refused(store, other, name="bank", signal="url_md5")
    assert _snapshot(store.root / "banks") == before
    assert load_info(store, "bank").version == 1


# ------------------------------------------------------------------------------------------------
# versions and deltas
# ------------------------------------------------------------------------------------------------


def test_reimport_same_file_is_unchanged(store: Store, tmp_path: Path) -> None:
    path = _hexlist(tmp_path / "l.txt", _digests("url_md5", "a", "b"))
    first = import_list(store, path, signal="url_md5")
    before = _snapshot(store.root / "banks")
    again = import_list(store, path, signal="url_md5")
    assert again.unchanged
    assert (again.version, again.count, again.added, again.removed) == (first.version, 2, 0, 0)
    assert _snapshot(store.root / "banks") == before


def test_reimport_same_values_in_another_file_is_unchanged(store: Store, tmp_path: Path) -> None:
    values = _digests("url_md5", "a", "b")
    import_list(store, _hexlist(tmp_path / "a" / "l.txt", values), signal="url_md5")
    before = _snapshot(store.root / "banks")
    shuffled = _hexlist(tmp_path / "b" / "l.txt", values[::-1] + values, header="# reordered\n\n")
    res = import_list(store, shuffled, name="l", signal="url_md5")
    assert res.unchanged and res.version == 1
    assert _snapshot(store.root / "banks") == before


def test_newer_file_makes_a_version_with_exact_deltas(store: Store, tmp_path: Path) -> None:
    a, b, c, d, e = _digests("url_sha1", "a", "b", "c", "d", "e")
    r1 = import_list(store, _hexlist(tmp_path / "1" / "p.txt", [a, b, c]), signal="url_sha1")
    r2 = import_list(store, _hexlist(tmp_path / "2" / "p.txt", [b, c, d, e, d]), name="p", signal="url_sha1")
    assert (r1.version, r1.count, r1.added, r1.removed) == (1, 3, 3, 0)
    assert (r2.version, r2.count, r2.added, r2.removed, r2.unchanged) == (2, 4, 2, 1, False)
    assert _stored(store, "p") == sorted([b, c, d, e])
    assert _delta(store, "p", 1, "added", 20) == sorted([a, b, c])
    assert _delta(store, "p", 1, "removed", 20) == []
    assert _delta(store, "p", 2, "added", 20) == sorted([d, e])
    assert _delta(store, "p", 2, "removed", 20) == [a]
    info = load_info(store, "p")
    assert [(v["version"], v["count"], v["added"], v["removed"]) for v in info.versions] == [
        (1, 3, 3, 0),
        (2, 4, 2, 1),
    ]

    # v3 drops everything; v4 brings one old value back.
    r3 = import_list(
        store, _write(tmp_path / "3" / "p.txt", "# emptied\n"), name="p", signal="url_sha1", allow_empty=True
    )
    assert (r3.version, r3.count, r3.added, r3.removed) == (3, 0, 0, 4)
    r4 = import_list(store, _hexlist(tmp_path / "4" / "p.txt", [a]), name="p", signal="url_sha1")
    assert (r4.version, r4.count, r4.added, r4.removed) == (4, 1, 1, 0)

    def since(v: int) -> list[bytes]:
        got = added_since(store, "p", v, 20)
        assert got.dtype == np.dtype("S20")
        return _rows(got)

    assert since(0) == sorted([a, b, c, d, e])
    assert since(1) == sorted([a, d, e])
    assert since(2) == [a]
    assert since(3) == [a]
    assert since(4) == []


def test_load_bank_holds_the_current_values(store: Store, tmp_path: Path) -> None:
    a, b, c = _digests("url_md5", "a", "b", "c")
    import_list(store, _hexlist(tmp_path / "1" / "k.txt", [a, b]), signal="url_md5")
    bank = load_bank(store, "k")
    q = np.array([a, b, c], dtype="S16")
    assert bank.values.contains(q).tolist() == [True, True, False]
    import_list(store, _hexlist(tmp_path / "2" / "k.txt", [b, c]), name="k", signal="url_md5")
    with pytest.raises(ExpungeError, match="changed during the run"):
        load_bank(store, "k", expect_version=1)
    bank = load_bank(store, "k", expect_version=2)
    assert bank.values.contains(q).tolist() == [False, True, True]
    with pytest.raises(ExpungeError, match="no bank named"):
        load_bank(store, "absent")


# ------------------------------------------------------------------------------------------------
# plaintext lists: URLs and domains
# ------------------------------------------------------------------------------------------------

URLS = [
    "http://River.Example/a/../b/./c",
    "HTTPS://stone.example:443/x?y=1#section",
    "meadow.example/path/to/page.html",
    "http://cloud.example/%7Euser/%2541",
    "http://harbor.example",
    "HTTP://HARBOR.EXAMPLE/",  # same canonical URL as the previous one
    "  http://lantern.example/a b\t",
]


def _sha256_canonical(url: str) -> bytes:
    canon = canonicalize(url.encode("utf-8"))
    assert canon is not None
    return hashlib.sha256(canon).digest()


def test_url_list_stores_sha256_of_the_canonical_url(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "urls.txt", "# plaintext\n" + "\n".join(URLS) + "\n")
    res = import_list(store, path, signal="url")
    expected = sorted({_sha256_canonical(u) for u in URLS})
    assert res.count == len(expected) == len(URLS) - 1
    assert _stored(store, "urls") == expected
    info = load_info(store, "urls")
    assert (info.recipe, info.feature, info.width) == ("canonical", "url:canonical:sha256", 32)

    # Nothing under the store holds any of the URLs, their canonical forms or their hosts in plaintext.
    blobs = [p.read_bytes() for p in store.root.rglob("*") if p.is_file()]
    assert blobs
    needles: set[bytes] = set()
    for url in URLS:
        canon = canonicalize(url.encode())
        assert canon is not None
        needles |= {url.strip().encode(), canon, canon.split(b"/")[2]}
    needles |= {b"river.example", b"River.Example", b"lantern", b"%7Euser", b"~user"}
    for blob in blobs:
        for needle in needles:
            assert needle not in blob
            assert needle.hex().encode() not in blob
    dumped = json.dumps(info.public())
    assert not any(n.decode() in dumped for n in needles)


def test_url_list_in_csv(store: Store, tmp_path: Path) -> None:
    text = "url,category\nhttp://river.example/a,alpha\nhttp://stone.example/b,beta\n"
    import_list(store, _write(tmp_path / "u.csv", text), signal="url")
    expected = sorted(_sha256_canonical(u) for u in ("http://river.example/a", "http://stone.example/b"))
    assert _stored(store, "u") == expected


@pytest.mark.parametrize(
    "bad", [f"data:text/plain,{MARK}", f"ftp://{MARK}.example/", f"mailto:{MARK}@x.example"]
)
def test_unparseable_url_refuses_the_list(store: Store, tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path / "urls.txt", f"http://river.example/\n{bad}\n")
    _refused(store, path, where="line 2", signal="url")
    assert store.bank_names() == []


def test_domain_list(store: Store, tmp_path: Path) -> None:
    explicit = hashlib.sha256(b"harbor.example").hexdigest()
    entries = [
        "river.example",
        "Stone.Example.",
        "https://meadow.example/some/path",
        "http://user@cloud.example:8080/",
        explicit.upper(),
        "RIVER.example",  # duplicate after canonicalisation
    ]
    res = import_list(store, _write(tmp_path / "domains.txt", "\n".join(entries)), signal="domain")
    hosts = [b"river.example", b"stone.example", b"meadow.example", b"cloud.example", b"harbor.example"]
    expected = sorted(hashlib.sha256(h).digest() for h in hosts)
    assert res.count == 5
    assert _stored(store, "domains") == expected
    info = load_info(store, "domains")
    assert (info.feature, info.recipe) == ("domain:sha256", "canonical")
    for blob in (p.read_bytes() for p in store.root.rglob("*") if p.is_file()):
        assert not any(h in blob for h in hosts)


@pytest.mark.parametrize("bad", [f"ftp://{MARK}.example/", f"https://{MARK}@/", f"...{MARK}"[:3]])
def test_bad_domain_refused(store: Store, tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path / "domains.txt", f"river.example\n{bad}\n")
    _refused(store, path, where="line 2", signal="domain")


# ------------------------------------------------------------------------------------------------
# recipes and signal types
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["raw", "stripped", "canonical"])
def test_digest_signal_recipes(store: Store, tmp_path: Path, recipe: str) -> None:
    path = _hexlist(tmp_path / "r.txt", _digests("url_sha1", "a"))
    import_list(store, path, name=f"r-{recipe}", signal="url_sha1", recipe=recipe)
    assert load_info(store, f"r-{recipe}").feature == f"url:{recipe}:sha1"


@pytest.mark.parametrize(
    ("signal", "recipe"),
    [("url", "raw"), ("url", "stripped"), ("domain", "raw"), ("url_md5", "lowercase")],
)
def test_recipe_validation(store: Store, tmp_path: Path, signal: str, recipe: str) -> None:
    path = _write(tmp_path / "r.txt", "http://river.example/\n")
    text = _refused(store, path, signal=signal, recipe=recipe)
    assert "recipe" in text and recipe in text
    assert store.bank_names() == []


def test_default_recipe(store: Store, tmp_path: Path) -> None:
    path = _hexlist(tmp_path / "h.txt", _digests("url_sha256", "a"))
    import_list(store, path, signal="url_sha256", recipe=None)
    assert load_info(store, "h").recipe == "raw"
    import_list(store, _write(tmp_path / "u.txt", "http://river.example/\n"), signal="url")
    assert load_info(store, "u").recipe == "canonical"


def test_signal_type_errors(store: Store, tmp_path: Path) -> None:
    path = _hexlist(tmp_path / "s.txt", _digests("url_md5", "a"))
    assert "signal type unknown" in _refused(store, path)
    assert "unknown signal type" in _refused(store, path, signal="url_crc32")
    assert "expected 64 hex digits for pdq" in _refused(store, path, signal="pdq")
    assert store.bank_names() == []


def test_public_never_contains_values(store: Store, tmp_path: Path) -> None:
    values = _digests("url_md5", "a", "b", "c")
    import_list(store, _hexlist(tmp_path / "pub.txt", values), signal="url_md5", source="partner-b")
    pub = load_info(store, "pub").public()
    fields = {"name", "signal", "recipe", "source", "version", "label", "count", "file_sha256", "threshold"}
    assert set(pub) == fields
    assert (pub["name"], pub["signal"], pub["count"], pub["version"]) == ("pub", "url_md5", 3, 1)
    dumped = json.dumps(pub)
    for v in values:
        assert v.hex() not in dumped and v.hex().upper() not in dumped


# ------------------------------------------------------------------------------------------------
# property: any valid list imports to exactly its digests
# ------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    signal=st.sampled_from(sorted(WIDTH)),
    data=st.data(),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_import_round_trip(signal: str, data: st.DataObject, crlf: bool, bom: bool) -> None:
    w = WIDTH[signal]
    first = data.draw(st.lists(st.binary(min_size=w, max_size=w), max_size=30))
    second = data.draw(st.lists(st.binary(min_size=w, max_size=w), max_size=30) | st.just(first[::2]))
    eol = "\r\n" if crlf else "\n"

    def text(values: list[bytes]) -> bytes:
        body = eol.join(["# synthetic", *[v.hex() for v in values], ""])
        return (b"\xef\xbb\xbf" if bom else b"") + body.encode()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        first_file = _write(Path(tmp) / "1" / "b.txt", text(first))
        r1 = import_list(store, first_file, signal=signal, allow_empty=True)
        assert _stored(store, "b") == sorted(set(first))
        second_file = _write(Path(tmp) / "2" / "b.txt", text(second))
        r2 = import_list(store, second_file, name="b", signal=signal, allow_empty=True)
        assert _stored(store, "b") == sorted(set(second))
        assert r2.added == len(set(second) - set(first))
        assert r2.removed == len(set(second) ^ set(first)) - r2.added
        assert r2.unchanged == (set(first) == set(second))
        assert r2.version == r1.version + (0 if r2.unchanged else 1)
        got = set(_rows(added_since(store, "b", 0, w)))
        assert got == set(first) | set(second)
