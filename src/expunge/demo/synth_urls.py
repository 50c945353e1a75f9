"""Per-row features, captions and URLs of the synthetic generator, and non-canonical URL forms with a
known canonical result (so match tests know exactly which stored spellings a canonical list catches).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from expunge.demo.synth_pools import (
    _ALNUM,
    _BRANDS,
    _CAPTION_POOLS,
    _CAPTION_TEMPLATE_WEIGHTS,
    _CATEGORIES,
    _COMMON_DIMS,
    _DOT_DIRS,
    _ESCAPED_PREFIXES,
    _EXTENSION_WEIGHTS,
    _EXTENSIONS,
    _FRAGMENTS,
    _MONTHS,
    _SIZE_SUFFIXES,
    _STATIC_PREFIXES,
    _SUBDOMAINS,
    _TLDS,
    _TOP_DIRS,
    _YEARS,
    IntArray,
    U64Array,
    _alnum,
    _by_kind,
    _cat,
    _decimal,
    _hex,
    _mix64,
    _pool,
    _slug,
    _take,
    _weights,
)

_HTTPS_SHARE: Final = 0.72
# Tokens: 10**9 + (g * _TOKEN_MUL + offset) mod _TOKEN_SPACE is a bijection on row indices below
# _TOKEN_SPACE because _TOKEN_MUL is prime and does not divide 9 * 10**9 = 2**9 * 3**2 * 5**9.
_TOKEN_SPACE: Final = 9 * 10**9
_TOKEN_MUL: Final = 2_654_435_761

# --------------------------------------------------------------------------------------------------
# Per-row features, captions and canonical URLs.


@dataclass(frozen=True)
class _Hosts:
    names: list[str]
    weights: npt.NDArray[np.float64]
    top_dir: IntArray  # each host's habitual top directory, so a site's URLs look alike
    prefix_kind: IntArray


def _make_hosts(rng: np.random.Generator, count: int, tld_override: str | None = None) -> _Hosts:
    """A pool of made-up hosts in the shapes real image hosts take (sub.brand, CDN shards, buckets)."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        brand = _BRANDS[int(rng.integers(len(_BRANDS)))]
        sub = _SUBDOMAINS[int(rng.integers(len(_SUBDOMAINS)))]
        tld = tld_override or _TLDS[int(rng.choice(len(_TLDS), p=[0.6, 0.25, 0.15]))]
        num = int(rng.integers(0, 10))
        shape = int(rng.integers(0, 10))
        if shape == 0:
            host = f"{sub}{num}.{brand}.{tld}"
        elif shape == 1:
            host = f"images-{('na', 'eu', 'fe')[num % 3]}.ssl-{brand}.{tld}"
        elif shape == 2:
            token = "".join(chr(_ALNUM[int(i)]) for i in rng.integers(0, 36, 12))
            host = f"d{token}.edgecache-fake.{tld}"
        elif shape == 3:
            host = f"farm{num + 1}.static-{brand}.{tld}"
        elif shape == 4:
            host = f"lh{num % 6 + 1}.usercontent-{brand}.{tld}"
        elif shape == 5:
            host = f"{brand}.files.blogpress-fake.{tld}"
        elif shape == 6:
            host = f"{brand}-media.s3.storage-fake.{tld}"
        elif shape == 7:
            host = f"cdn{num}.{brand}.{tld}"
        else:
            host = f"{sub}.{brand}.{tld}"
        if host not in seen:
            seen.add(host)
            names.append(host)
    return _Hosts(
        names=names,
        weights=_weights(count, 1.05),
        top_dir=rng.integers(0, len(_TOP_DIRS), count),
        prefix_kind=rng.integers(0, 7, count),
    )


def _draw_features(rng: np.random.Generator, n: int) -> dict[str, IntArray]:
    feats = {name: rng.integers(0, len(pool), n) for name, pool in _CAPTION_POOLS.items()}
    feats["caption"] = rng.choice(len(_CAPTION_TEMPLATE_WEIGHTS), n, p=_CAPTION_TEMPLATE_WEIGHTS)
    common = rng.integers(0, len(_COMMON_DIMS), n)
    dims = np.array(_COMMON_DIMS, dtype=np.int64)
    free_w = rng.integers(128, 2400, n)
    free_h = (free_w * rng.uniform(0.5, 1.8, n)).astype(np.int64)
    use_common = rng.random(n) < 0.75
    feats["width"] = np.where(use_common, dims[common, 0], free_w)
    feats["height"] = np.where(use_common, dims[common, 1], free_h)
    return feats


def _build_captions(feats: dict[str, IntArray]) -> Any:
    pools = {name: _pool(values) for name, values in _CAPTION_POOLS.items()}
    caps = _pool([c[0].upper() + c[1:] for c in _CAPTION_POOLS["color"]])

    def w(name: str, rows: IntArray) -> Any:
        return _take(pools[name], feats[name][rows])

    def num(name: str, rows: IntArray) -> Any:
        return pc.cast(pa.array(feats[name][rows]), pa.string())

    builders: list[Callable[[IntArray], Any]] = [
        lambda r: _cat(
            "a ", w("color", r), " ", w("material", r), " ", w("object", r), " on a ", w("surface", r)
        ),
        lambda r: _cat(w("landscape", r), " at ", w("time", r), ", ", w("style", r)),
        lambda r: _cat(_take(caps, feats["color"][r]), " ", w("object", r), " isolated on white background"),
        lambda r: _cat(
            w("adj", r),
            " ",
            w("material", r),
            " ",
            w("object", r),
            " - ",
            w("color", r),
            ", size ",
            w("size", r),
        ),
        lambda r: _cat("close-up of ", w("flower", r), " in ", w("season", r)),
        lambda r: _cat(
            w("style", r), " of a ", w("animal", r), " ", w("action", r), " in the ", w("place", r)
        ),
        lambda r: _cat(w("dish", r), " with ", w("fruit", r), ", food photography"),
        lambda r: _cat("stock photo: ", w("landscape", r), " with ", w("weather", r)),
        lambda r: _cat(w("landscape", r), " wallpaper ", num("width", r), "x", num("height", r)),
    ]
    return _by_kind(feats["caption"], builders)


def _tokens(global_rows: npt.NDArray[Any], offset: int) -> U64Array:
    g = np.asarray(global_rows, dtype=np.uint64)
    return np.uint64(10**9) + (g * np.uint64(_TOKEN_MUL) + np.uint64(offset)) % np.uint64(_TOKEN_SPACE)


def _build_urls(rng: np.random.Generator, feats: dict[str, IntArray], tokens: U64Array, hosts: _Hosts) -> Any:
    """Canonical URLs: ``scheme://host/top/second/<prefix><token><size><ext>[?query]``.

    The token is the only ten-digit run in the last path segment (prefixes end in a non-digit,
    suffixes start with one, other digit runs are shorter), which is what makes URLs unique.
    """
    n = len(tokens)
    mixed = _mix64(tokens)
    host_idx = rng.choice(len(hosts.names), n, p=hosts.weights)
    loyal = rng.random(n) < 0.8
    top = np.where(loyal, hosts.top_dir[host_idx], rng.integers(0, len(_TOP_DIRS), n))
    prefix_kind = np.where(loyal, hosts.prefix_kind[host_idx], rng.integers(0, 7, n))
    second_kind = rng.choice(7, n, p=[0.3, 0.25, 0.12, 0.12, 0.06, 0.05, 0.1])
    query_kind = rng.choice(9, n, p=[0.66, 0.08, 0.05, 0.05, 0.04, 0.03, 0.03, 0.03, 0.03])
    years = rng.integers(0, len(_YEARS), n)
    months = rng.integers(0, len(_MONTHS), n)
    categories = rng.integers(0, len(_CATEGORIES), n)
    static_prefix = rng.integers(0, len(_STATIC_PREFIXES), n)
    escaped_prefix = rng.integers(0, len(_ESCAPED_PREFIXES), n)
    sizes = rng.integers(0, len(_SIZE_SUFFIXES), n)
    exts = rng.choice(len(_EXTENSIONS), n, p=_EXTENSION_WEIGHTS)
    dir_ids = rng.integers(1000, 999_999, n)
    versions = rng.integers(1_000_000, 9_999_999, n)
    widths, heights = feats["width"], feats["height"]

    def num(values: IntArray) -> Any:
        return pc.cast(pa.array(values), pa.string())

    def hexdirs(r: IntArray) -> Any:
        h = _hex(mixed[r] >> np.uint64(48), 4)
        return _cat(pc.utf8_slice_codeunits(h, 0, 2), "/", pc.utf8_slice_codeunits(h, 2, 4), "/")

    second_builders: list[Callable[[IntArray], Any]] = [
        lambda r: pa.array([""] * len(r), pa.string()),
        lambda r: _cat(_take(_pool(_YEARS), years[r]), "/", _take(_pool(_MONTHS), months[r]), "/"),
        hexdirs,
        lambda r: _take(_pool(_CATEGORIES), categories[r]),
        lambda r: _cat(num(widths[r]), "x", num(heights[r]), "/"),
        lambda r: _cat("w_", num(widths[r]), ",h_", num(heights[r]), ",c_fill/"),
        lambda r: _cat(num(dir_ids[r]), "/"),
    ]
    prefix_builders: list[Callable[[IntArray], Any]] = [
        lambda r: pa.array([""] * len(r), pa.string()),
        lambda r: _take(_pool(_STATIC_PREFIXES), static_prefix[r]),
        lambda r: _cat(
            _take(_slug(_CAPTION_POOLS["color"]), feats["color"][r]),
            "-",
            _take(_slug(_CAPTION_POOLS["object"]), feats["object"][r]),
            "-",
        ),
        lambda r: _cat(_hex(mixed[r], 8), "_"),
        lambda r: _take(_pool(_ESCAPED_PREFIXES), escaped_prefix[r]),
        lambda r: _cat(_take(_slug(_CAPTION_POOLS["landscape"]), feats["landscape"][r]), "-"),
        lambda r: _cat(_take(_slug(_CAPTION_POOLS["adj"]), feats["adj"][r]), "_"),
    ]
    query_builders: list[Callable[[IntArray], Any]] = [
        lambda r: pa.array([""] * len(r), pa.string()),
        lambda r: _cat("?v=", num(versions[r])),
        lambda r: _cat("?w=", num(widths[r]), "&h=", num(heights[r]), "&fit=crop"),
        lambda r: _cat("?width=", num(widths[r])),
        lambda r: _cat("?itok=", _alnum(rng, len(r), 8)),
        lambda r: pa.array(["?format=jpg&quality=85"] * len(r), pa.string()),
        lambda r: _cat("?s=", _hex(mixed[r] >> np.uint64(8), 8)),
        lambda r: pa.array(["?ssl=1"] * len(r), pa.string()),
        lambda r: _cat("?resize=", num(widths[r]), ",", num(heights[r])),
    ]
    scheme = np.where(rng.random(n) < _HTTPS_SHARE, 1, 0)
    return _cat(
        _take(_pool(["http://", "https://"]), scheme),
        _take(_pool(hosts.names), host_idx),
        "/",
        _take(_pool(_TOP_DIRS), top),
        _by_kind(second_kind, second_builders),
        _by_kind(prefix_kind, prefix_builders),
        _decimal(tokens, 10),
        _take(_pool(_SIZE_SUFFIXES), sizes),
        _take(_pool(_EXTENSIONS), exts),
        _by_kind(query_kind, query_builders),
    )


# --------------------------------------------------------------------------------------------------
# Non-canonical forms with a known canonical result.


def _split_url(url: str) -> tuple[str, str, str, str]:
    scheme, rest = url.split("://", 1)
    host, _, tail = rest.partition("/")
    path, mark, query = ("/" + tail).partition("?")
    return scheme, host, path, mark + query


def _slash_positions(path: str) -> list[int]:
    return [i for i, c in enumerate(path) if c == "/"]


def _escapable_letters(path: str) -> list[int]:
    """Positions of ASCII letters in ``path`` that are not part of an existing ``%XX`` escape."""
    skip: set[int] = set()
    for i, c in enumerate(path):
        if c == "%":
            skip.update((i + 1, i + 2))
    return [i for i, c in enumerate(path) if c.isascii() and c.isalpha() and i not in skip]


_TRANSFORMS: Final = ("host-case", "port", "fragment", "dot", "dot-dot", "escape", "spaces", "scheme-case")


def _transform(url: str, kinds: Sequence[str], rng: np.random.Generator) -> str:
    """Apply edits that Safe Browsing canonicalisation undoes exactly, so the result maps back to ``url``."""
    scheme, host, path, query = _split_url(url)
    port = fragment = ""
    lead = trail = ""
    for kind in kinds:
        if kind == "escape":
            letters = _escapable_letters(path)
            i = letters[int(rng.integers(len(letters)))]
            code = f"%{ord(path[i]):02X}"
            path = path[:i] + (code.lower() if rng.random() < 0.3 else code) + path[i + 1 :]
        elif kind in ("dot", "dot-dot"):
            slashes = _slash_positions(path)
            i = slashes[int(rng.integers(len(slashes)))]
            extra = "./" if kind == "dot" else f"{_DOT_DIRS[int(rng.integers(len(_DOT_DIRS)))]}/../"
            path = path[: i + 1] + extra + path[i + 1 :]
        elif kind == "host-case":
            chars = list(host)
            letters = [i for i, c in enumerate(chars) if c.isalpha()]
            picks = rng.random(len(letters)) < 0.5
            picks[int(rng.integers(len(letters)))] = True
            for i, pick in zip(letters, picks, strict=True):
                if pick:
                    chars[i] = chars[i].upper()
            host = "".join(chars)
        elif kind == "port":
            port = ":80" if scheme == "http" else ":443"
        elif kind == "fragment":
            fragment = "#" + _FRAGMENTS[int(rng.integers(len(_FRAGMENTS)))]
        elif kind == "spaces":
            lead = " " * int(rng.integers(1, 3))
            trail = " " * int(rng.integers(0, 3))
        elif kind == "scheme-case":
            scheme = scheme.upper() if rng.random() < 0.5 else scheme.capitalize()
        else:  # pragma: no cover - guarded by _TRANSFORMS
            raise ValueError(kind)
    return f"{lead}{scheme}://{host}{port}{path}{query}{fragment}{trail}"


def _variant_kinds(ordinal: int, rng: np.random.Generator) -> list[str]:
    """Cycle through every edit so even a small dataset has one variant of each; sometimes add a second."""
    first = _TRANSFORMS[ordinal % len(_TRANSFORMS)]
    kinds = [first]
    if rng.random() < 0.4:
        second = _TRANSFORMS[int(rng.integers(len(_TRANSFORMS)))]
        if second != first:
            kinds.append(second)
    return kinds


_NONCANONICAL: Final = ("host-upper", "port", "fragment", "dot", "double-slash", "lower-hex")


def _noncanonical(url: str, kind: str, rng: np.random.Generator) -> str:
    """Benign stored forms that are not canonical: what scrapers really record now and then."""
    scheme, host, path, query = _split_url(url)
    if kind == "lower-hex":
        lowered = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), path)
        if lowered != path:
            return f"{scheme}://{host}{lowered}{query}"
        kind = "double-slash"
    if kind == "double-slash":
        slashes = _slash_positions(path)
        i = slashes[int(rng.integers(len(slashes)))]
        return f"{scheme}://{host}{path[:i]}/{path[i:]}{query}"
    if kind == "host-upper":
        return f"{scheme}://{host.upper() if rng.random() < 0.5 else host.title()}{path}{query}"
    return _transform(url, [kind], rng)
