"""A keep-list: SHA-256 of the exact URL bytes of a cleaned release. Rows whose URL is NOT in it are
found ("not in the release"), which is how derivative copies follow a release (LAION's way).

Exact bytes, not a canonical form: a raw-recipe list may flag one spelling of a URL that the release
kept in another, and a keep-list must never widen what it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from expunge.features.base import Feature
from expunge.signals.base import Signal


@dataclass(frozen=True)
class ReleaseKeep(Signal):
    def feature(self, recipe: str) -> Feature:
        return Feature("url", "sha256", recipe)


RELEASE_KEEP = ReleaseKeep("release_keep", 32, ("raw",), matcher="keep")
