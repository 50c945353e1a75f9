"""A feature: one kind of per-row value the index stores and banks are matched against.

A feature's name (``url:canonical:sha1``, ``url_expr:sha256``, ``domain:sha256``, ``image:pdq``) is
written into the store (``bank.json``'s ``feature``, ``dataset.json``'s feature lists, index file
names), so it is parsed here, once, into a :class:`Feature`, and :attr:`Feature.name` gives back the
very same string. Everything else that used to be read off the string (value width, one value or a
list per row, which index file and column hold it) is a property of the parsed value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

#: URL recipes: the bytes a URL digest is taken of (see :class:`expunge.features.url.UrlBatch`).
URL_RECIPES = ("raw", "stripped", "canonical")
#: Bytes per value for each digest.
WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32, "pdq": 32, "pdq8": 32}
#: The one index file that holds every image feature of a shard, one line per member.
IMAGES_FILE = "images.parquet"
_KINDS = ("url", "url_expr", "domain", "image")
# Kinds whose rows yield a list of values (Safe Browsing expressions, host suffixes, dihedral PDQs).
_MULTI = ("url_expr", "domain")
# The images.parquet column of each image feature (the 7 other orientations' PDQs are "dihedral").
_IMAGE_COLUMNS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "pdq", "pdq8": "dihedral"}


@dataclass(frozen=True)
class Feature:
    """One per-row value: ``kind`` (url | url_expr | domain | image), ``algo``, and for URL digests the
    ``recipe`` the digest is taken of."""

    kind: str
    algo: str
    recipe: str | None = None

    def __post_init__(self) -> None:
        ok = self.kind in _KINDS and self.algo in WIDTHS
        if self.kind == "url":
            ok = ok and self.recipe in URL_RECIPES
        elif self.recipe is not None:
            ok = False
        if self.kind == "image":
            ok = ok and self.algo in _IMAGE_COLUMNS
        elif self.algo in ("pdq", "pdq8"):
            ok = False
        if not ok:
            raise KeyError(f"unknown feature {self.name!r}")

    @property
    def name(self) -> str:
        """The stored name: ``KIND:RECIPE:ALGO`` for URL digests, ``KIND:ALGO`` otherwise."""
        if self.recipe is not None:
            return f"{self.kind}:{self.recipe}:{self.algo}"
        return f"{self.kind}:{self.algo}"

    @property
    def width(self) -> int:
        """Bytes per value."""
        return WIDTHS[self.algo]

    @property
    def multi(self) -> bool:
        """Rows yield a list of values rather than one."""
        return self.kind in _MULTI or self.algo == "pdq8"

    @property
    def is_image(self) -> bool:
        """Computed from image bytes (one decode yields every image feature), not from the URL."""
        return self.kind == "image"

    @property
    def file(self) -> str:
        """The shard index file that holds this feature."""
        return IMAGES_FILE if self.is_image else self.name.replace(":", "_") + ".parquet"

    @property
    def column(self) -> str:
        """The column of :attr:`file` that holds this feature (URL feature files have one, ``v``)."""
        return _IMAGE_COLUMNS[self.algo] if self.is_image else "v"

    def __str__(self) -> str:
        return self.name


@cache
def parse_feature(name: str) -> Feature:
    """Parse a stored feature name. Raises KeyError (naming the feature) for anything unknown."""
    parts = name.split(":")
    if len(parts) == 3:
        return Feature(parts[0], parts[2], parts[1])
    if len(parts) == 2:
        return Feature(parts[0], parts[1])
    raise KeyError(f"unknown feature {name!r}")


#: Every image feature: one decode computes them all, so they are indexed together.
IMAGE_FEATURES = tuple(Feature("image", a) for a in ("md5", "sha1", "sha256", "pdq"))
#: The 7 other orientations' PDQ hashes (indexed with ``--dihedral``).
DIHEDRAL = Feature("image", "pdq8")
