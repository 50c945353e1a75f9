"""What a synthetic dataset is: its schema, its list names and comments, and its ground truth.

Shared by the generator (:mod:`expunge.demo.synth`) and the list writer (:mod:`expunge.demo.synth_lists`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pyarrow as pa

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
