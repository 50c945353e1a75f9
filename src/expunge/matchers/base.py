"""The matcher interface: one bank's values looked for in one shard's index, giving findings.

A signal type names its matcher (:attr:`expunge.signals.base.Signal.matcher`); the match stage builds a
:class:`Probe` and calls :meth:`Matcher.find`, and never asks which signal, feature or matcher it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from expunge.errors import ExpungeError
from expunge.features.base import IMAGES_FILE, Feature
from expunge.index.build import read_feature
from expunge.index.images import read_images

if TYPE_CHECKING:
    from expunge.matchers.exact import SortedSet


@dataclass(frozen=True)
class Findings:
    """Rows of one shard matching one bank: row indices, the matched bank values (``S{width}``), and
    the distance of each match for matchers that compare by distance (None for exact ones)."""

    rows: np.ndarray
    values: np.ndarray
    distances: np.ndarray | None = None


@dataclass(frozen=True)
class Probe:
    """What a matcher needs to look for one bank's values in one shard."""

    index_dir: Path
    shard_name: str
    bank: str
    feature: Feature
    width: int
    values: np.ndarray  # the values to look for: the whole bank, or only those it gained since a version
    whole: SortedSet | None  # the whole bank's lookup table (cached per worker) when ``values`` is all of it
    threshold: int | None = None  # for matchers that compare by distance
    quality_floor: int = 0  # image hashes below this quality are counted, never matched
    dihedral: bool = False  # also match the 7 other orientations' hashes


class Matcher(ABC):
    """How a bank's values meet a shard's feature values."""

    #: Findings can be brought up to date by matching only the values a bank gained (and dropping those
    #: it lost). A matcher that finds what is *absent* cannot be, and is always run in full.
    incremental: bool = True

    @abstractmethod
    def find(self, probe: Probe) -> Findings:
        """Every match of ``probe.values`` in the shard (a row may repeat, once per matched value)."""


def images_of(probe: Probe) -> pa.Table:
    """The shard's image index: one line per member (with its sample's row, -1 outside every sample)."""
    if not (probe.index_dir / IMAGES_FILE).is_file():
        raise ExpungeError("image lists need image shards: this shard has none", probe.index_dir.name)
    return read_images(probe.index_dir)


def feature_column(probe: Probe) -> tuple[pa.Array, np.ndarray | None]:
    """The probe's feature column, and for image features the row each of its lines belongs to
    (None: line i is row i)."""
    f = probe.feature
    if not f.is_image:
        return read_feature(probe.index_dir, f.name), None
    images = images_of(probe)
    return images.column(f.column).combine_chunks(), images.column("row").to_numpy()


def member_rows(rows: np.ndarray, probe: Probe) -> np.ndarray:
    """Rows of matched members; a match on data outside every sample has no row to remove: refused."""
    outside = int((rows < 0).sum())
    if outside:
        raise ExpungeError(
            f"{outside} file(s) outside every sample match bank {probe.bank!r}: they cannot be removed with"
            " a row (refusing the shard; remove them from it)",
            probe.shard_name,
        )
    return rows
