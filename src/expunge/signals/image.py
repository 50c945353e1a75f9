"""Image signals: digests of the exact stored bytes, and PDQ of the decoded pixels (by distance)."""

from __future__ import annotations

from dataclasses import dataclass

from expunge.features.base import WIDTHS, Feature
from expunge.signals.base import Signal


@dataclass(frozen=True)
class ImageSignal(Signal):
    algo: str = "sha256"

    def feature(self, recipe: str) -> Feature:
        return Feature("image", self.algo)


def image_digest(name: str, algo: str) -> ImageSignal:
    return ImageSignal(name, WIDTHS[algo], ("stored",), algo=algo)


PDQ = ImageSignal("pdq", 32, ("decoded",), matcher="hamming", default_threshold=31, algo="pdq")
