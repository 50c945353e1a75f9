"""One completion mechanism for every stage: skip work whose record still matches, redo the rest.

A unit of work (a shard's index, its findings, its cleaned output) is done when

- its completion record exists and agrees with the fingerprint of what the work would be now
  (size and mtime of the shard; the bank versions; the clean plan and the size of the outputs), and
- every file the work produced is still there.

Records are JSON objects. Workers write theirs last, atomically (``mark_done``), so a run killed
before that point redoes the unit; the index's records are kept together in the store's
``dataset.json`` by the orchestrator, which alone writes store metadata. Parts of a unit (an index's
features) are done when recorded and their file is present (``present``). ``forget`` drops a record
so the next run redoes the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from expunge import atomic

Record = dict[str, Any]
Fingerprint = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def read_record(path: Path) -> Record | None:
    """The completion record at ``path``, or None when the unit never completed."""
    return atomic.read_json(path) if path.is_file() else None


def mark_done(path: Path, record: Mapping[str, Any], tmp_dir: Path | None) -> None:
    """Write a unit's completion record: the last write of the unit, atomic."""
    atomic.write_json(path, dict(record), tmp_dir)


def forget(*paths: Path) -> None:
    """Drop completion records (and the outputs they vouched for, when given): the unit is redone."""
    for path in paths:
        path.unlink(missing_ok=True)


def is_done(
    record: Mapping[str, Any] | None, fingerprint: Fingerprint, outputs: Iterable[Path | str] = ()
) -> bool:
    """Whether a unit can be skipped: its outputs exist and its record holds every fingerprint field.

    A missing record matches only an empty fingerprint. A callable fingerprint is computed only once
    the outputs are known to exist (the clean stage's fingerprint sizes them).
    """
    if not all(Path(p).is_file() for p in outputs):
        return False
    want = fingerprint() if callable(fingerprint) else fingerprint
    have = record or {}
    return all(k in have and have[k] == v for k, v in want.items())


def present(recorded: Iterable[str], output_of: Callable[[str], Path]) -> set[str]:
    """Parts of a unit that are done: recorded, and their file still there (the rest are redone)."""
    return {p for p in recorded if output_of(p).is_file()}
