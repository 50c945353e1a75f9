"""One run configuration: every option a command can set, each default stated here and nowhere else.

The CLI builds a :class:`RunConfig` from its options, the API passes it down whole, and lower layers
read their defaults from the constants below, so a default changed here changes everywhere at once.
This module imports nothing from the rest of expunge (it sits below every layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from expunge.progress import Reporter

DEFAULT_STORE: Final = ".expunge"
DEFAULT_EXECUTOR: Final = "local"
# PDQ hashes below this quality (0..100) are unreliable: counted, never matched.
QUALITY_FLOOR: Final = 50
# Larger images are quarantined as decompression bombs (Pillow's own limit, 2 * 89,478,485).
MAX_PIXELS: Final = 178_956_970
# The policy a clean runs under when none is named: hash lists only (expunge.policy.presets).
DEFAULT_POLICY: Final = "hash-only"
# Flood guard (expunge.stages.flood): a bank or rule deciding more than FLOOD_MIN_ROWS rows and either
# more than this share of a dataset's rows or more than FLOOD_MULTIPLE times the rows it decided in the
# previous clean stops the clean before anything is written.
FLOOD_SHARE: Final = 0.01
FLOOD_MULTIPLE: Final = 10.0
FLOOD_MIN_ROWS: Final = 1000


@dataclass(frozen=True)
class RunConfig:
    """What every stage needs besides the dataset: where state lives, what runs the tasks, and the
    release policy. Frozen: one run sees one configuration from start to end."""

    store: str | Path = DEFAULT_STORE
    executor: str = DEFAULT_EXECUTOR  # local, or ray
    address: str | None = None  # Ray cluster address (or RAY_ADDRESS); the local executor ignores it
    workers: int | None = None  # None: every core
    # Dataset columns; None: detected by their LAION / Re-LAION / HF names. A named column that is
    # missing is refused before any work. The caption column is recorded in the store's dataset model
    # for signals that read captions.
    url_column: str | None = None
    caption_column: str | None = None
    key_column: str | None = None
    dihedral: bool = False  # also index and match the 7 other orientations of every image (PDQ)
    quality_floor: int = QUALITY_FLOOR
    max_pixels: int = MAX_PIXELS
    sign_key: Path | None = None  # sign the release manifest (minisign format) with this key
    cover: int = 0  # hide each flagged row among at least this many removed rows (release.cover)
    publish_records: bool = False  # put removed.parquet in the release: it names every removed row
    previous_manifest: Path | None = None  # the release this one follows, when OUT does not hold it
    allow_empty: bool = False  # accept a --list with no values (an empty list removes nothing)
    policy: str = DEFAULT_POLICY  # a preset name or a policy file (TOML): what soft signals do
    keywords: tuple[Path, ...] = ()  # caption term lists the policy's `keyword` flags refer to (by file stem)
    accept_flood: tuple[str, ...] = ()  # banks or rules allowed past the flood guard for this run
    flood_share: float = FLOOD_SHARE
    flood_multiple: float = FLOOD_MULTIPLE
    flood_min_rows: int = FLOOD_MIN_ROWS
    reporter: Reporter | None = None  # progress bars and notes; None: silent

    def __post_init__(self) -> None:
        # Paths given as text (from a notebook, say) are read as paths, once, here.
        for name in ("sign_key", "previous_manifest"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "keywords", tuple(Path(p) for p in self.keywords or ()))
        object.__setattr__(self, "accept_flood", tuple(self.accept_flood or ()))
