"""A feature: one kind of per-row value the index stores and banks are matched against.

A feature's name (``url:canonical:sha1``, ``url_expr:sha256``, ``domain:sha256``, ``image:pdq``) is
written into the store (``bank.json``'s ``feature``, ``dataset.json``'s feature lists, index file
names), so it is parsed here, once, into a :class:`Feature`, and :attr:`Feature.name` gives back the
very same string. Everything else that used to be read off the string (value width, one value or a
list per row, which index file and column hold it) is a property of the parsed value.

What a feature is computed from, and how, belongs to its :class:`FeatureKind`, registered by name by
the module that defines it (URL kinds in :mod:`expunge.features.url`, which this package imports; a
signal module may bring its own). The index stage never asks which kind it computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import pyarrow as pa

#: URL recipes: the bytes a URL digest is taken of (see :class:`expunge.features.url.UrlBatch`).
URL_RECIPES = ("raw", "stripped", "canonical")
#: Bytes per value for each digest.
WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32, "pdq": 32, "pdq8": 32}
#: The one index file that holds every image feature of a shard, one line per member.
IMAGES_FILE = "images.parquet"
#: The source of image features: decoded members, not a metadata column (the index hashes every image
#: feature in one decode, see :mod:`expunge.index.images`).
IMAGE_SOURCE = "image"
DIGESTS = ("md5", "sha1", "sha256")
# The images.parquet column of each image feature (the 7 other orientations' PDQs are "dihedral").
_IMAGE_COLUMNS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "pdq", "pdq8": "dihedral"}


@dataclass(frozen=True)
class FeatureKind:
    """A family of features (``url``, ``domain``, ``image``, ``caption``...): the column role its values
    come from and how one batch of that column becomes values.

    ``source`` is a column role (``url``, ``caption``) that a dataset's detected columns resolve to
    (:class:`expunge.formats.parquet.ColumnMap`), or :data:`IMAGE_SOURCE`. The index stage reads each
    role's column once per shard, wraps each batch once per :attr:`batch_type` (so kinds of one family
    share derived forms, such as the canonical URL) and asks every kind for its values. A signal module
    can bring its own kind: define a subclass, :func:`register_kind` it, and return features of it.
    """

    name: str
    source: str
    algos: tuple[str, ...]
    recipes: tuple[str, ...] = ()  # the recipes a name may carry; () = names carry none
    multi: bool = False  # rows yield a list of values rather than one

    #: Wraps one batch of the source column (plain string or binary Arrow); kinds with the same
    #: batch type share one wrapper per batch. None: not computed from a metadata column.
    batch_type: ClassVar[Any] = None

    def accepts(self, algo: str, recipe: str | None) -> bool:
        if algo not in self.algos or algo not in WIDTHS:
            return False
        return recipe in self.recipes if self.recipes else recipe is None

    def is_multi(self, feature: Feature) -> bool:
        return self.multi

    def file(self, feature: Feature) -> str:
        """The shard index file that holds the feature (one per feature, one column ``v``)."""
        return feature.name.replace(":", "_") + ".parquet"

    def column(self, feature: Feature) -> str:
        return "v"

    def values(self, batch: Any, feature: Feature) -> pa.Array:
        """The feature's values for one wrapped batch (null where a row yields none): one Arrow array
        of ``binary(width)``, or of lists of them for :attr:`multi` kinds. Vectorised where possible."""
        raise KeyError(f"feature {feature.name!r} is not computed from a column")


@dataclass(frozen=True)
class ImageKind(FeatureKind):
    """Image digests and PDQ: every one comes from a single decode, into the shard's ``images.parquet``."""

    def is_multi(self, feature: Feature) -> bool:
        return feature.algo == "pdq8"

    def file(self, feature: Feature) -> str:
        return IMAGES_FILE

    def column(self, feature: Feature) -> str:
        return _IMAGE_COLUMNS[feature.algo]


#: Every feature kind this process knows, by name (built-ins register on import; see :func:`register_kind`).
KINDS: dict[str, FeatureKind] = {}


def register_kind(kind: FeatureKind) -> FeatureKind:
    """Make a feature kind known. A name is taken once: stored feature names must keep their meaning."""
    known = KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"feature kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


IMAGE = register_kind(ImageKind("image", IMAGE_SOURCE, tuple(_IMAGE_COLUMNS)))


@dataclass(frozen=True)
class Feature:
    """One per-row value: ``kind`` (the name of a registered :class:`FeatureKind`), ``algo``, and for
    kinds that take one (URL digests) the ``recipe`` the digest is taken of."""

    kind: str
    algo: str
    recipe: str | None = None

    def __post_init__(self) -> None:
        spec = KINDS.get(self.kind)
        if spec is None or not spec.accepts(self.algo, self.recipe):
            raise KeyError(f"unknown feature {self.name!r}")

    @property
    def spec(self) -> FeatureKind:
        return KINDS[self.kind]

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
    def source(self) -> str:
        """The column role the values come from (``url``, ``caption``) or :data:`IMAGE_SOURCE`."""
        return self.spec.source

    @property
    def multi(self) -> bool:
        """Rows yield a list of values rather than one."""
        return self.spec.is_multi(self)

    @property
    def is_image(self) -> bool:
        """Computed from image bytes (one decode yields every image feature), not from a column."""
        return self.source == IMAGE_SOURCE

    @property
    def file(self) -> str:
        """The shard index file that holds this feature."""
        return self.spec.file(self)

    @property
    def column(self) -> str:
        """The column of :attr:`file` that holds this feature (column feature files have one, ``v``)."""
        return self.spec.column(self)

    @property
    def value_type(self) -> pa.DataType:
        """The Arrow type of the feature's column."""
        return pa.list_(pa.binary(self.width)) if self.multi else pa.binary(self.width)

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
