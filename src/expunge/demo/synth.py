"""Synthetic, entirely benign LAION-style shards and hash lists for expunge's demo, tests and benchmarks.

Real inputs (abuse hash lists, web-scale scrapes) can never be shipped or used in tests, yet every stage
of expunge has to be exercised end to end on realistic shapes and sizes. This module makes both sides
from nothing:

* parquet shards whose captions come from neutral word lists ("a red ceramic mug on a wooden table")
  and whose URLs point at made-up hosts under reserved TLDs (``.example``, ``.test``, ``.example.net``);
* list files whose "flagged" entries are ordinary generated rows picked at random, plus decoys that
  match nothing. Each list file carries a header comment saying it is synthetic wherever its format
  has comments at all.

Ground truth is exact by construction rather than by checking afterwards, so tests can assert exact
counts:

* every URL's last path segment holds exactly one run of exactly ten decimal digits, a token that is a
  bijection of the row's global index, so no two rows share a canonical URL;
* most stored URLs are already in Safe Browsing canonical form; every other http(s) form is derived
  from a canonical base by edits whose canonical result is known (host case, default port, fragment,
  dot segments, escaped unreserved letters, surrounding spaces, scheme case).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge.atomic import atomic_path, write_bytes

__all__ = [
    "HEADER_COMMENT",
    "LIST_NAMES",
    "QUARANTINE_KINDS",
    "SCHEMA",
    "URL_LIST_COMMENT",
    "FlaggedRow",
    "ListedForm",
    "SynthDataset",
    "generate_dataset",
    "random_digests",
    "write_digest_list",
    "write_lists",
]

IntArray = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]

LIST_NAMES: Final = ("iwf", "c3p", "tx", "urls")
QUARANTINE_KINDS: Final = ("null", "empty", "data-uri", "no-host", "not-utf8")
HEADER_COMMENT: Final = (
    "SYNTHETIC list of hashes of benign generated URLs, for demos and tests only.\n"
    "Made by expunge.synth from made-up hosts under reserved TLDs; it matches no real content."
)
URL_LIST_COMMENT: Final = (
    "SYNTHETIC list of benign generated URLs, for demos and tests only.\n"
    "Made by expunge.synth from made-up hosts under reserved TLDs; it matches no real content."
)

SCHEMA: Final = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("HEIGHT", pa.int32()),
        ("WIDTH", pa.int32()),
        ("LICENSE", pa.string()),
        ("NSFW", pa.string()),
        ("similarity", pa.float64()),
        ("punsafe", pa.float32()),
        ("pwatermark", pa.float32()),
        ("hash", pa.int64()),
    ],
    metadata={"expunge.synthetic": "true", "generator": "expunge.synth"},
)

# Shares of the dataset; small datasets still get every quarantine kind so tests see each one.
_QUARANTINE_SHARE: Final = 0.001
_NONCANONICAL_SHARE: Final = 0.02
_VARIANT_SHARE: Final = 1 / 3
_HTTPS_SHARE: Final = 0.72

# Tokens: 10**9 + (g * _TOKEN_MUL + offset) mod _TOKEN_SPACE is a bijection on row indices below
# _TOKEN_SPACE because _TOKEN_MUL is prime and does not divide 9 * 10**9 = 2**9 * 3**2 * 5**9.
_TOKEN_SPACE: Final = 9 * 10**9
_TOKEN_MUL: Final = 2_654_435_761
_MAX_ROWS: Final = 10**9


@dataclass(frozen=True)
class FlaggedRow:
    """A generated row that one synthetic list catches; the ground truth that match tests compare to."""

    shard: str
    row: int
    list_name: str
    variant: bool


@dataclass(frozen=True)
class ListedForm:
    """What a list holds for a flagged row, kept so list writing never has to re-derive canonical forms."""

    raw: bytes
    canonical: str


@dataclass(frozen=True)
class SynthDataset:
    """Where a generated dataset lives and what its ground truth is.

    ``listed`` (not part of equality or repr, so flagged URLs never land in logs) maps each flagged row
    to the stored bytes and the canonical URL that the lists are built from.
    """

    root: Path
    shards: list[Path]
    rows: int
    flagged: list[FlaggedRow]
    quarantine_rows: int
    listed: dict[FlaggedRow, ListedForm] = field(default_factory=dict, repr=False, compare=False)


# --------------------------------------------------------------------------------------------------
# Word lists. Everything is neutral: household objects, landscapes, food, pets, art styles.
# fmt: off

_CAPTION_POOLS: Final[dict[str, tuple[str, ...]]] = {
    "color": (
        "red", "blue", "green", "yellow", "white", "black", "grey", "navy blue", "teal", "orange",
        "pink", "beige", "brown", "purple", "turquoise", "olive", "cream", "silver", "golden", "mint",
    ),
    "material": (
        "ceramic", "wooden", "glass", "cotton", "leather", "linen", "stainless steel", "bamboo",
        "wool", "marble", "copper", "porcelain", "rattan", "velvet", "oak", "enamel",
    ),
    "object": (
        "mug", "table lamp", "armchair", "teapot", "backpack", "notebook", "vase", "bicycle", "sofa",
        "desk", "bookshelf", "sweater", "scarf", "sneakers", "umbrella", "wall clock", "cushion",
        "bowl", "kettle", "guitar", "camera", "watch", "sun hat", "rug", "basket", "candle",
        "plant pot", "picture frame", "water bottle", "lunch box",
    ),
    "surface": (
        "wooden table", "marble countertop", "kitchen shelf", "linen tablecloth", "concrete floor",
        "windowsill", "park bench", "white desk", "stone wall",
    ),
    "landscape": (
        "mountain landscape", "lake shore", "pine forest", "desert dunes", "coastal cliffs",
        "rolling hills", "city skyline", "harbour", "river valley", "snowy village", "lavender field",
        "tropical beach", "old town square", "country road", "alpine meadow", "lighthouse",
    ),
    "time": ("sunset", "sunrise", "dawn", "dusk", "noon", "night", "golden hour", "blue hour"),
    "style": (
        "oil painting", "watercolor", "digital art", "photograph", "pencil sketch", "vintage postcard",
        "3d render", "flat illustration", "35mm film photo", "impressionist painting", "ink drawing",
        "poster art", "linocut print", "pastel drawing",
    ),
    "animal": (
        "tabby cat", "golden retriever", "horse", "red fox", "barn owl", "rabbit", "hedgehog", "parrot",
        "deer", "sheep", "koala", "penguin", "border collie", "goldfish",
    ),
    "action": ("sleeping", "sitting", "running", "playing", "resting", "looking out of a window"),
    "place": ("garden", "meadow", "living room", "snowy field", "library", "kitchen", "forest clearing"),
    "flower": ("tulips", "sunflowers", "roses", "daisies", "orchids", "cherry blossoms", "peonies"),
    "season": ("spring", "summer", "autumn", "winter"),
    "adj": ("Men's", "Women's", "Kids'", "Unisex", "Classic", "Modern", "Handmade", "Vintage", "Premium"),
    "size": ("S", "M", "L", "XL", "One Size", "38", "40", "42"),
    "dish": (
        "crème brûlée", "crêpes", "pancakes", "jalapeño pizza", "smoothie bowl", "croissants",
        "lemon tart", "ramen", "green salad", "apple pie", "café au lait",
    ),
    "fruit": ("fresh berries", "sliced peaches", "mint leaves", "honey", "lemon zest", "figs"),
    "weather": ("clear sky", "dramatic clouds", "morning fog", "light rain", "fresh snow", "a rainbow"),
}

_CAPTION_TEMPLATE_WEIGHTS: Final = (0.2, 0.16, 0.12, 0.14, 0.08, 0.12, 0.07, 0.06, 0.05)

_BRANDS: Final = (
    "shop-images", "pixelbarn", "snapcrate", "photonook", "imagewharf", "picturebay", "fotohaven",
    "blogstatic", "mediavault", "artfeed", "homedecor", "gadgetpics", "travelsnaps", "recipebox",
    "fashionrack", "petcorner", "gardenpost", "printmint", "wallpaperhub", "craftmarket", "stocksy-fake",
    "lensloft", "framewise", "pinwall", "cookpad-fake", "tilehouse", "woodgrain", "inkwell", "postcardly",
    "urbanlens", "trailmap", "muralhub", "brightshelf", "cozyhome", "petalpress", "bikeshed", "atlasmedia",
    "quillblog", "mapleprint", "seasidefoto",
)
_SUBDOMAINS: Final = (
    "cdn", "img", "images", "static", "media", "i", "assets", "photos", "pics", "uploads", "www",
    "content", "thumbs", "files",
)
_TLDS: Final = ("example", "test", "example.net")
_DECOY_TLD: Final = "invalid"  # never used for dataset rows, so decoy URLs cannot collide with them

_TOP_DIRS: Final = (
    "", "images/", "img/", "media/", "uploads/", "wp-content/uploads/", "photos/", "products/",
    "media/catalog/product/", "assets/", "files/", "content/images/", "static/img/", "p/", "u/",
    "originals/", "gallery/", "blog/", "storage/", "Images/", "cache/", "pictures/full/",
)
_CATEGORIES: Final = (
    "home-decor/", "kitchen/", "travel/", "nature/", "fashion/", "art/", "food/", "pets/", "garden/",
    "sports/", "Wallpapers/", "Products/", "misc/", "lifestyle/",
)
_STATIC_PREFIXES: Final = ("IMG_", "DSC_", "photo-", "image_", "product-", "pic-", "P", "file_", "img-")
# Upper-case escapes for space and UTF-8 bytes: already canonical under Safe Browsing rules.
_ESCAPED_PREFIXES: Final = (
    "summer%20trip-", "caf%C3%A9-", "cr%C3%A8me-br%C3%BBl%C3%A9e-", "m%C3%BCnchen-", "na%C3%AFve-art-",
    "my%20photo-", "s%C3%A3o-paulo-", "new%20york-", "%C3%A9t%C3%A9-", "garden%20party_",
)
_SIZE_SUFFIXES: Final = (
    "", "", "", "", "", "-300x200", "-768x512", "-1024x683", "_640", "_1280", "-scaled", "@2x",
    "_large", "-thumb", "_o", "-full", "_b", "-min",
)
_EXTENSIONS: Final = (".jpg", ".jpeg", ".png", ".webp", ".JPG", ".gif", "")
_EXTENSION_WEIGHTS: Final = (0.52, 0.12, 0.16, 0.07, 0.06, 0.03, 0.04)
_YEARS: Final = tuple(str(y) for y in range(2008, 2024))
_MONTHS: Final = tuple(f"{m:02d}" for m in range(1, 13))
_LICENSES: Final = ("?", "by", "by-sa", "by-nc", "by-nc-sa", "by-nd", "cc0")
_LICENSE_WEIGHTS: Final = (0.955, 0.01, 0.01, 0.008, 0.007, 0.005, 0.005)
_NSFW_LABELS: Final = ("UNLIKELY", "UNSURE", "NSFW")
_NSFW_WEIGHTS: Final = (0.935, 0.05, 0.015)
_COMMON_DIMS: Final = (
    (640, 480), (800, 600), (1024, 768), (1200, 800), (1920, 1080), (1280, 720), (500, 500),
    (600, 400), (1080, 1080), (300, 300), (1600, 1200), (2048, 1365), (750, 1000), (400, 600),
)
_NO_HOST_TEXTS: Final = (b"not a url", b"image not available", b"see caption", b"no image", b"placeholder")
_FRAGMENTS: Final = ("main", "gallery", "top", "image-1", "content", "photo")
_DOT_DIRS: Final = ("x", "tmp", "old", "cache", "v2")

# fmt: on

_HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ALNUM: Final = np.frombuffer(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8
)


def _check_pools() -> None:
    """Fail loudly if a word list could break the token-uniqueness or canonical-form arguments."""
    bad = [
        p for p in (*_STATIC_PREFIXES, *_ESCAPED_PREFIXES) if not p or p[-1].isdigit() or set(p) & set("/?")
    ]
    bad += [s for s in (*_SIZE_SUFFIXES, *_EXTENSIONS) if s[:1].isdigit() or set(s) & set("/?")]
    for piece in (*_STATIC_PREFIXES, *_SIZE_SUFFIXES, *_EXTENSIONS, *_TOP_DIRS, *_CATEGORIES):
        if (
            set(piece) & set("%#")
            or not all(0x20 < ord(c) < 0x7F for c in piece)
            or "//" in piece
            or "./" in piece
        ):
            bad.append(piece)
    if bad:
        raise RuntimeError(f"synthetic word lists break the URL construction rules: {bad}")


# --------------------------------------------------------------------------------------------------
# Vectorised string helpers: columns are assembled from pools with pyarrow kernels, never row by row.


def _pool(values: Sequence[str]) -> Any:
    return pa.array(list(values), pa.string())


def _take(pool: Any, idx: npt.NDArray[Any]) -> Any:
    return pool.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _cat(*parts: Any) -> Any:
    return pc.binary_join_element_wise(*parts, "")


def _fixed_ascii(chars: npt.NDArray[np.uint8]) -> Any:
    """Wrap an (n, width) matrix of ASCII codes as a string array without a Python loop."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _decimal(values: npt.NDArray[Any], width: int) -> Any:
    """Zero-padded decimal strings of fixed width."""
    v = np.asarray(values, dtype=np.uint64)[:, None]
    powers = np.array([10**k for k in range(width - 1, -1, -1)], dtype=np.uint64)
    return _fixed_ascii(((v // powers) % np.uint64(10) + np.uint64(48)).astype(np.uint8))


def _hex(values: U64Array, width: int) -> Any:
    """The low ``width`` nibbles of each value as lower-case hex."""
    shifts = np.arange(4 * (width - 1), -1, -4, dtype=np.uint64)
    nibbles = (values[:, None] >> shifts) & np.uint64(15)
    return _fixed_ascii(_HEX[nibbles.astype(np.intp)])


def _alnum(rng: np.random.Generator, n: int, width: int) -> Any:
    return _fixed_ascii(_ALNUM[rng.integers(0, len(_ALNUM), (n, width))])


def _mix64(values: U64Array) -> U64Array:
    """SplitMix64 finaliser: turns sequential tokens into hash-looking, still deterministic, bits."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _by_kind(kind: IntArray, builders: Sequence[Callable[[IntArray], Any]]) -> Any:
    """Build each row with the builder its kind selects, running each builder once on its own rows.

    Cheaper than building every template for every row and choosing: each row is assembled once.
    """
    n = len(kind)
    order = np.argsort(kind, kind="stable")
    counts = np.bincount(kind, minlength=len(builders))
    parts = []
    start = 0
    for k, count in enumerate(counts):
        if count:
            rows = order[start : start + count]
            parts.append(builders[k](rows))
            start += int(count)
    if not parts:
        return pa.array([], pa.string())
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n, dtype=np.int64)
    return pa.concat_arrays(parts).take(pa.array(inverse))


def _slug(values: Sequence[str]) -> Any:
    return _pool([v.replace(" ", "-").replace("'", "") for v in values])


def _weights(n: int, exponent: float) -> npt.NDArray[np.float64]:
    w: npt.NDArray[np.float64] = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return w / float(w.sum())


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


# --------------------------------------------------------------------------------------------------
# Planning: which rows are flagged, quarantined or non-canonical, decided once for the whole dataset.


@dataclass(frozen=True)
class _Plan:
    bounds: IntArray
    names: list[str]
    token_offset: int
    sample_id_base: int
    hosts: _Hosts
    flagged: list[FlaggedRow]
    flagged_global: IntArray
    variant_ordinal: dict[int, int]
    quarantine_global: IntArray
    quarantine_kind: IntArray
    noncanonical_global: IntArray


def _split_evenly(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _plan(rows: int, shards: int, seed: int, flagged: int, utf8_only: bool = False) -> _Plan:
    rng = np.random.default_rng([seed, 0x5EED])
    sizes = _split_evenly(rows, shards)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    names = [f"part-{i:05d}.parquet" for i in range(shards)]

    picked: list[IntArray] = []
    for i, (size, k) in enumerate(zip(sizes, _split_evenly(flagged, shards), strict=True)):
        if k:
            picked.append(np.sort(rng.choice(size, k, replace=False)) + bounds[i])
    flagged_global = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)

    lists = np.empty(len(flagged_global), dtype=np.int64)
    lists[rng.permutation(len(flagged_global))] = np.arange(len(flagged_global)) % len(LIST_NAMES)
    variant = np.zeros(len(flagged_global), dtype=bool)
    for name in ("c3p", "urls"):
        members = np.flatnonzero(lists == LIST_NAMES.index(name))
        count = round(len(members) * _VARIANT_SHARE)
        variant[rng.choice(members, count, replace=False)] = True
    variant_ordinal = {int(g): j for j, g in enumerate(flagged_global[variant])}

    shard_of = np.searchsorted(bounds, flagged_global, side="right") - 1
    flagged_rows = [
        FlaggedRow(names[s], int(g - bounds[s]), LIST_NAMES[int(lst)], bool(v))
        for g, s, lst, v in zip(flagged_global, shard_of, lists, variant, strict=True)
    ]

    free = np.ones(rows, dtype=bool)
    free[flagged_global] = False
    candidates = np.flatnonzero(free)
    n_quarantine = min(len(candidates), max(len(QUARANTINE_KINDS), round(rows * _QUARANTINE_SHARE)))
    n_noncanonical = min(len(candidates) - n_quarantine, round(rows * _NONCANONICAL_SHARE))
    chosen = rng.choice(candidates, n_quarantine + n_noncanonical, replace=False)
    quarantine = chosen[:n_quarantine]
    kinds = rng.permutation(np.arange(n_quarantine) % len(QUARANTINE_KINDS))
    if utf8_only:
        # Drop the rows only after every draw, so the rest of the plan (and every other row) is the
        # same as without the option; the dropped rows simply keep their canonical URL.
        keep = kinds != QUARANTINE_KINDS.index("not-utf8")
        quarantine, kinds = quarantine[keep], kinds[keep]
    order = np.argsort(quarantine)

    return _Plan(
        bounds=bounds,
        names=names,
        token_offset=int(rng.integers(0, _TOKEN_SPACE)),
        sample_id_base=int(rng.integers(10**9, 4 * 10**9)),
        hosts=_make_hosts(rng, 320),
        flagged=flagged_rows,
        flagged_global=flagged_global,
        variant_ordinal=variant_ordinal,
        quarantine_global=quarantine[order],
        quarantine_kind=kinds[order],
        noncanonical_global=np.sort(chosen[n_quarantine:]),
    )


def _in_shard(values: IntArray, start: int, end: int) -> slice:
    return slice(int(np.searchsorted(values, start)), int(np.searchsorted(values, end)))


def _quarantine_value(kind: str, canonical: str, rng: np.random.Generator) -> bytes | None:
    if kind == "null":
        return None
    if kind == "empty":
        return b""
    if kind == "data-uri":
        payload = b"\x89PNG\r\n\x1a\n" + rng.bytes(int(rng.integers(12, 48)))
        return b"data:image/png;base64," + base64.b64encode(payload)
    if kind == "no-host":
        return _NO_HOST_TEXTS[int(rng.integers(len(_NO_HOST_TEXTS)))]
    raw = canonical.encode()
    style = int(rng.integers(4))
    if style == 0:  # latin-1 e-acute followed by ASCII: never valid UTF-8
        cut = raw.rindex(b"/") + 1
        return raw[:cut] + b"caf\xe9-" + raw[cut:]
    if style == 1:  # UTF-16 with its byte-order mark; 0xFF never occurs in UTF-8
        return b"\xff\xfe" + canonical.encode("utf-16-le")
    if style == 2:  # truncated two-byte sequence at the end
        return raw + b"\xc3"
    return b"\x80" + raw  # lone continuation byte


# --------------------------------------------------------------------------------------------------
# Public API.


def generate_dataset(
    root: Path,
    rows: int = 200_000,
    shards: int = 8,
    seed: int = 0,
    flagged: int = 400,
    row_group_size: int = 10_000,
    compression: str = "zstd",
    progress: Callable[[int], None] | None = None,
    *,
    utf8_only: bool = False,
) -> SynthDataset:
    """Write ``root/part-00000.parquet`` ... and return the ground truth of what was written.

    Same arguments give byte-identical files; each shard draws from its own seeded stream, so a shard's
    content does not depend on how the others were produced.

    ``utf8_only`` leaves out the ``not-utf8`` quarantine rows (those rows keep their ordinary canonical
    URL instead), because some readers the benchmarks compare against, DuckDB among them, refuse a
    parquet ``string`` column holding invalid UTF-8. The flagged rows and every other URL stay as they
    would be without it.
    """
    if rows < 0 or rows > _MAX_ROWS:
        raise ValueError(f"rows must be between 0 and {_MAX_ROWS}, got {rows}")
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if not 0 <= flagged <= rows:
        raise ValueError(f"flagged must be between 0 and rows ({rows}), got {flagged}")
    if row_group_size < 1:
        raise ValueError(f"row_group_size must be at least 1, got {row_group_size}")
    _check_pools()
    plan = _plan(rows, shards, seed, flagged, utf8_only)
    root.mkdir(parents=True, exist_ok=True)
    listed: dict[FlaggedRow, ListedForm] = {}
    paths: list[Path] = []
    by_global = dict(zip((int(g) for g in plan.flagged_global), plan.flagged, strict=True))
    for index, name in enumerate(plan.names):
        path = root / name
        table, shard_listed = _shard_table(plan, index, seed, by_global)
        listed.update(shard_listed)
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, SCHEMA, compression=compression) as writer:
            for offset in range(0, table.num_rows, row_group_size):
                chunk = table.slice(offset, row_group_size)
                writer.write_table(chunk, row_group_size=row_group_size)
                if progress is not None:
                    progress(chunk.num_rows)
        paths.append(path)
    return SynthDataset(
        root=root,
        shards=paths,
        rows=rows,
        flagged=list(plan.flagged),
        quarantine_rows=len(plan.quarantine_global),
        listed=listed,
    )


def _shard_table(
    plan: _Plan, index: int, seed: int, by_global: dict[int, FlaggedRow]
) -> tuple[Any, dict[FlaggedRow, ListedForm]]:
    start, end = int(plan.bounds[index]), int(plan.bounds[index + 1])
    n = end - start
    rng = np.random.default_rng([seed, 0xDA7A, index])
    global_rows = np.arange(start, end, dtype=np.int64)
    feats = _draw_features(rng, n)
    tokens = _tokens(global_rows, plan.token_offset)
    canonical = _build_urls(rng, feats, tokens, plan.hosts)
    captions = _build_captions(feats)

    edits: dict[int, bytes | None] = {}
    listed: dict[FlaggedRow, ListedForm] = {}
    fl = plan.flagged_global[_in_shard(plan.flagged_global, start, end)]
    fl_canonical = canonical.take(pa.array(fl - start)).to_pylist()
    for g, canon in zip(fl, fl_canonical, strict=True):
        flagged_row = by_global[int(g)]
        stored = canon
        if flagged_row.variant:
            stored = _transform(canon, _variant_kinds(plan.variant_ordinal[int(g)], rng), rng)
            edits[int(g) - start] = stored.encode()
        listed[flagged_row] = ListedForm(raw=stored.encode(), canonical=canon)

    nc = plan.noncanonical_global[_in_shard(plan.noncanonical_global, start, end)]
    nc_kinds = rng.integers(0, len(_NONCANONICAL), len(nc))
    for g, canon, k in zip(nc, canonical.take(pa.array(nc - start)).to_pylist(), nc_kinds, strict=True):
        edits[int(g) - start] = _noncanonical(canon, _NONCANONICAL[int(k)], rng).encode()

    q_slice = _in_shard(plan.quarantine_global, start, end)
    q = plan.quarantine_global[q_slice]
    q_canonical = canonical.take(pa.array(q - start)).to_pylist()
    for g, kind, canon in zip(q, plan.quarantine_kind[q_slice], q_canonical, strict=True):
        edits[int(g) - start] = _quarantine_value(QUARANTINE_KINDS[int(kind)], canon, rng)

    urls = canonical
    if edits:
        at = sorted(edits)
        mask = np.zeros(n, dtype=bool)
        mask[at] = True
        replaced = pc.replace_with_mask(
            canonical.cast(pa.binary()), pa.array(mask), pa.array([edits[i] for i in at], pa.binary())
        )
        # Bytes that are not UTF-8 must reach the file as a ``string`` column, as scrapes really do.
        urls = pa.Array.from_buffers(
            pa.string(), len(replaced), replaced.buffers(), replaced.null_count, replaced.offset
        )

    license_idx = rng.choice(len(_LICENSES), n, p=_LICENSE_WEIGHTS)
    nsfw_idx = rng.choice(len(_NSFW_LABELS), n, p=_NSFW_WEIGHTS)
    table = pa.Table.from_arrays(
        [
            pa.array(global_rows + plan.sample_id_base, pa.int64()),
            urls,
            captions,
            pa.array(feats["height"].astype(np.int32), pa.int32()),
            pa.array(feats["width"].astype(np.int32), pa.int32()),
            _take(_pool(_LICENSES), license_idx),
            _take(_pool(_NSFW_LABELS), nsfw_idx),
            pa.array(np.clip(rng.normal(0.32, 0.035, n), 0.28, 0.5), pa.float64()),
            pa.array(rng.beta(0.5, 12.0, n).astype(np.float32), pa.float32()),
            pa.array(rng.beta(0.7, 2.5, n).astype(np.float32), pa.float32()),
            pa.array(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True), pa.int64()),
        ],
        schema=SCHEMA,
    )
    return table, listed


def random_digests(n: int, width: int, seed: int) -> npt.NDArray[np.bytes_]:
    """``n`` random ``width``-byte digests as an ``S{width}`` array, for million-entry benchmark banks.

    Beware: numpy drops trailing NUL bytes when a single element is read out (``arr[i]``); use
    ``arr.tobytes()`` or pass the array itself to :func:`write_digest_list`, which reads the full width.
    """
    if n < 0 or width < 1:
        raise ValueError(f"need n >= 0 and width >= 1, got n={n}, width={width}")
    rng = np.random.default_rng([seed, 0xD1657])
    return np.frombuffer(rng.bytes(n * width), dtype=f"S{width}").copy()


def write_digest_list(
    path: Path,
    digests: Iterable[bytes] | npt.NDArray[np.bytes_],
    fmt: str,
    signal: str = "url_md5",
    header_comment: str = HEADER_COMMENT,
) -> Path:
    """Write digests as a list file in one of the formats expunge imports.

    ``plain``: ``#`` comment lines, then one lower-case hex digest per line. ``csv``: header
    ``<hash>,id,category`` (``md5`` for ``url_md5``), a running id and a ``synthetic-*`` category; CSV
    has no comment syntax, so ``header_comment`` is not written. ``pytx``: python-threatexchange's
    ``<signal> <hex>`` lines; its readers do not skip comments, so none is written either.
    """
    hexes = _hex_strings(digests)
    if fmt == "plain":
        text = _comment_block(header_comment, "\n") + "".join(h + "\n" for h in hexes)
    elif fmt == "csv":
        column = signal.rsplit("_", 1)[-1]
        rows = (f"{h},{i},synthetic-{'ABC'[i % 3]}\n" for i, h in enumerate(hexes, start=1))
        text = f"{column},id,category\n" + "".join(rows)
    elif fmt == "pytx":
        text = "".join(f"{signal} {h}\n" for h in hexes)
    else:
        raise ValueError(f"unknown list format {fmt!r}; expected 'plain', 'csv' or 'pytx'")
    write_bytes(path, text.encode("utf-8"))
    return path


def _hex_strings(digests: Iterable[bytes] | npt.NDArray[np.bytes_]) -> list[str]:
    if isinstance(digests, np.ndarray) and digests.dtype.kind == "S":
        n, width = len(digests), digests.dtype.itemsize
        if n == 0:
            return []
        codes = np.ascontiguousarray(digests).view(np.uint8).reshape(n, width)
        chars = np.empty((n, 2 * width), dtype=np.uint8)
        chars[:, 0::2] = _HEX[codes >> 4]
        chars[:, 1::2] = _HEX[codes & 15]
        text = chars.tobytes().decode("ascii")
        step = 2 * width
        return [text[i : i + step] for i in range(0, len(text), step)]
    return [bytes(d).hex() for d in digests]


def _comment_block(comment: str, newline: str) -> str:
    return "".join(f"# {line}".rstrip() + newline for line in comment.splitlines())


def write_lists(ds: SynthDataset, out_dir: Path, *, seed: int = 0, decoys: int = 5_000) -> dict[str, Path]:
    """Write the four synthetic lists that catch ``ds.flagged``, each padded with decoys that match nothing.

    Entries are shuffled so flagged ones are not bunched at the top, and ``c3p.txt`` deliberately uses a
    BOM, CRLF line ends and a comment block mid-file, the quirks list readers must survive.
    """
    if decoys < 0:
        raise ValueError(f"decoys must be >= 0, got {decoys}")
    missing = [f for f in ds.flagged if f not in ds.listed]
    if missing:
        raise ValueError("dataset has no recorded listed forms; generate it with generate_dataset()")
    rng = np.random.default_rng([seed, 0x115])
    by_list = {name: [ds.listed[f] for f in ds.flagged if f.list_name == name] for name in LIST_NAMES}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    iwf = _mixed_digests(
        [hashlib.md5(f.raw, usedforsecurity=False).digest() for f in by_list["iwf"]], 16, decoys, rng
    )
    paths["iwf"] = write_digest_list(out_dir / "iwf.csv", iwf, "csv", signal="url_md5")

    c3p = _hex_strings(
        _mixed_digests(
            [hashlib.sha1(f.canonical.encode(), usedforsecurity=False).digest() for f in by_list["c3p"]],
            20,
            decoys,
            rng,
        )
    )
    half = len(c3p) // 2
    crlf = "\r\n"
    text = (
        "\ufeff"
        + _comment_block(
            HEADER_COMMENT + "\nformat: one lower-case hex SHA-1 of a canonical URL per line", crlf
        )
        + "".join(h + crlf for h in c3p[:half])
        + crlf
        + _comment_block("second batch (synthetic)", crlf)
        + "".join(h + crlf for h in c3p[half:])
    )
    paths["c3p"] = out_dir / "c3p.txt"
    write_bytes(paths["c3p"], text.encode("utf-8"))

    tx = _mixed_digests(
        [hashlib.md5(f.raw, usedforsecurity=False).digest() for f in by_list["tx"]], 16, decoys, rng
    )
    paths["tx"] = write_digest_list(out_dir / "threatexchange.txt", tx, "pytx", signal="url_md5")

    urls = [f.canonical for f in by_list["urls"]] + _decoy_urls(rng, decoys)
    order = rng.permutation(len(urls))
    paths["urls"] = out_dir / "urls.txt"
    body = _comment_block(URL_LIST_COMMENT, "\n") + "".join(urls[i] + "\n" for i in order)
    write_bytes(paths["urls"], body.encode("utf-8"))
    return paths


def _mixed_digests(
    real: list[bytes], width: int, decoys: int, rng: np.random.Generator
) -> npt.NDArray[np.bytes_]:
    """Real digests plus random decoys (any that collide with a real one are dropped), shuffled."""
    fake = np.frombuffer(rng.bytes(decoys * width), dtype=f"S{width}")
    real_arr = np.frombuffer(b"".join(real), dtype=f"S{width}") if real else np.empty(0, f"S{width}")
    if len(real_arr):
        fake = fake[~np.isin(fake, real_arr)]
    combined = np.concatenate([real_arr, fake])
    return combined[rng.permutation(len(combined))]


def _decoy_urls(rng: np.random.Generator, count: int) -> list[str]:
    """Realistic URLs on hosts under ``.invalid``, a TLD no dataset row uses, so they match nothing."""
    if count == 0:
        return []
    hosts = _make_hosts(rng, 60, tld_override=_DECOY_TLD)
    feats = _draw_features(rng, count)
    tokens = _tokens(np.arange(count), int(rng.integers(0, _TOKEN_SPACE)))
    urls: list[str] = _build_urls(rng, feats, tokens, hosts).to_pylist()
    return urls
