"""Neutral word pools and vectorised string helpers for the synthetic generator.

Columns are assembled from these pools with pyarrow kernels, never row by row, so a demo of millions of
rows is generated in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]


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
