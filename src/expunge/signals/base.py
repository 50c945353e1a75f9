"""What a signal type is: how a list value parses, which per-row feature it is compared with, and how.

Signal types are kept apart from content types (as in python-threatexchange): a bank holds values of
one signal type, the index holds per shard the *features* those signal types need, and a *matcher*
compares the two. A signal type says everything that differs between signal types, so the bank and
match code never ask which signal they hold.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from expunge.errors import ExpungeError
from expunge.features.base import Feature
from expunge.lists.readers import Tokens, hex_digests, parse_hex

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
