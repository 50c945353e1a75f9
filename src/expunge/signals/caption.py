"""Caption lists: ``caption_sha256``, the SHA-256 of a caption's NFC-normalised UTF-8 bytes.

For lists of known captions (text that travels with abusive images). A list holds 64-digit hex digests
only, never the captions themselves: a list file in the clear would be the very text expunge must not
hold, so hashing is the list maker's step (``sha256(unicodedata.normalize("NFC", caption).encode())``).
Matching is exact, after NFC alone: a composed "é" and "e" + combining acute are one caption, but case,
whitespace and punctuation count.

The caption is the dataset's caption column (detected, or ``--caption-column``); a dataset without one
is refused when a caption list is used. A row whose caption is null, or not UTF-8, has no value and is
not matched by caption lists; it is not quarantined for that (quarantine is about URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from expunge.features.base import Feature, FeatureKind, register_kind
from expunge.features.digest import as_binary, digest_array
from expunge.features.text import utf8_invalid_mask
from expunge.signals.base import Signal


class CaptionBatch:
    """One batch of captions, NFC-normalised once (Arrow's utf8proc kernel: no Python per row)."""

    def __init__(self, values: pa.Array) -> None:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        self.raw = as_binary(values)

    @cached_property
    def nfc(self) -> pa.Array:
        """The NFC form of each caption as UTF-8 text; null where the caption is null or not UTF-8."""
        raw = self.raw
        bad = utf8_invalid_mask(raw)
        if bad.any():
            raw = pc.if_else(pa.array(bad), pa.scalar(None, raw.type), raw)
        text_type = pa.large_string() if pa.types.is_large_binary(raw.type) else pa.string()
        return pc.utf8_normalize(raw.cast(text_type), "NFC")


@dataclass(frozen=True)
class CaptionKind(FeatureKind):
    """``caption:nfc:ALGO``: one digest per row of the NFC caption, from the ``caption`` column role."""

    batch_type: ClassVar[Any] = CaptionBatch

    def values(self, batch: CaptionBatch, feature: Feature) -> pa.Array:
        return digest_array(batch.nfc, feature.algo)


CAPTION = register_kind(CaptionKind("caption", "caption", ("sha256",), ("nfc",)))


@dataclass(frozen=True)
class CaptionSha256(Signal):
    """64-digit hex SHA-256 of NFC captions (the default parse: hex of ``width`` bytes)."""

    def feature(self, recipe: str) -> Feature:
        return Feature("caption", "sha256", recipe)


CAPTION_SHA256 = CaptionSha256("caption_sha256", 32, ("nfc",))
