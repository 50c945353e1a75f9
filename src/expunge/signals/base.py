"""What a signal type is: how a list value parses, which per-row feature it is compared with, and how.

Signal types are kept apart from content types (as in python-threatexchange): a bank holds values of
one signal type, the index holds per shard the *features* those signal types need, and a *matcher*
compares the two. A signal type says everything that differs between signal types, so the bank and
match code never ask which signal they hold.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from expunge.errors import ExpungeError
from expunge.features.base import Feature
from expunge.lists.readers import Tokens, hex_digests, parse_hex

if TYPE_CHECKING:
    from expunge.formats import Shard

# C0 controls but tab, and DEL: never part of a URL or domain someone listed.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Signal(ABC):
    """One signal type. Subclasses say which feature a recipe needs; the rest has defaults."""

    name: str
    width: int  # bytes per stored value
    recipes: tuple[str, ...]  # allowed recipes; the first is the default
    matcher: str = "exact"  # a name in expunge.matchers.registry: exact | hamming | keep
    default_threshold: int | None = None  # matchers that compare by distance: the default radius

    @property
    def default_recipe(self) -> str:
        return self.recipes[0]

    @property
    def thresholded(self) -> bool:
        """Banks of this signal carry a distance threshold (``--threshold``)."""
        return self.default_threshold is not None

    @abstractmethod
    def feature(self, recipe: str) -> Feature:
        """The per-row feature a bank of this signal with ``recipe`` is matched against."""

    def parse(self, token: str) -> bytes:
        """One list value → the stored bytes. Raises ValueError with a content-free message."""
        return parse_hex(token, self.width, self.name)

    def parse_values(self, tokens: Tokens) -> np.ndarray:
        """Every value of a list as ``S{width}`` (unsorted); any bad line refuses the whole file with
        one ExpungeError naming the line, never quoting it."""
        return hex_digests(tokens, self.width, self.name)


@dataclass(frozen=True)
class PlaintextSignal(Signal):
    """A signal whose lists hold plaintext (URLs, domains) hashed one by one on import (such lists are
    short); :meth:`parse` does the hashing."""

    def parse_values(self, tokens: Tokens) -> np.ndarray:
        values: list[bytes] = []
        for line, token in zip(tokens.lines.tolist(), tokens.tokens.to_pylist(), strict=True):
            if _CONTROL.search(token):
                # Canonicalisation would escape or drop it and hash a value no one listed; a NUL or a
                # lone CR (old Mac line ends: many URLs on one line) means a file that is not a list.
                raise ExpungeError("control character in a plaintext value", tokens.path, f"line {line}")
            try:
                values.append(self.parse(token))
            except ValueError as exc:
                raise ExpungeError(str(exc), tokens.path, f"line {line}") from None
        return np.array(values, dtype=f"S{self.width}") if values else np.empty(0, dtype=f"S{self.width}")


@dataclass(frozen=True)
class ValueSignal(ABC):
    """One soft signal type (see ``expunge.signals.soft``): a per-row number a policy compares with a
    threshold, higher is worse, NaN is missing. Subclasses measured per shard implement :meth:`measure`."""

    name: str  # the word in a policy: `nsfw`, or `score` in `score.COLUMN`
    takes_param: bool = False  # named with a parameter after a dot (`score.COLUMN`)
    low: float = -math.inf  # thresholds must lie in [low, high]
    high: float = math.inf
    scope: str = "shard"  # "shard": the soft stage measures it per shard; "dataset": triage does
    needs_images: bool = False  # measured from the image bytes a user holds

    def fingerprint(self) -> str:
        """What besides the shard's bytes decides the values (a model's SHA-256): a change redoes them."""
        return ""

    def check(self, ds: Any, param: str | None) -> None:
        """Refuse, before any work, a dataset this signal cannot measure (ExpungeError, one line)."""
        return None

    def measure(
        self, shard: Shard, index_dir: Path, param: str | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, values) in batches: int64 row indices and float64 values, NaN where a row has none.
        A row may come more than once (several images): its largest value counts, a NaN beats all."""
        raise NotImplementedError(f"{self.name} is not measured shard by shard")
