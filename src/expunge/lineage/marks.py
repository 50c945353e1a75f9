"""Marks: which datasets had rows removed (or were withdrawn, gated, renamed), and what replaced them.

A mark is what a maintainer asserts (``expunge lineage mark``); evidence is what ``expunge apply``
measured on a derivative it cleaned. Both are kept as a history, newest last, in one JSON file in the
store (``lineage/marks.json``), rewritten atomically: a notice sent last month must still be explained
by the marks that produced it.

A removal mark names its cleaned successor by the release's Merkle root and counts (by signal), read
from a release that verifies: a release that does not check out against its manifest could carry back
the rows it claims to have removed, so it is refused rather than recorded. Nothing here holds a URL,
caption or anything else from a row: counts, roots and ids only.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from expunge import atomic
from expunge.errors import ExpungeError

MARKS_FILE = "marks.json"
FORMAT = "expunge-lineage-marks/1"
STATUSES = ("removed", "withdrawn", "gated", "renamed")
# Statuses that leave a pointer dangling: repos whose cards name such a dataset are listed apart.
POINTER_STATUSES = ("withdrawn", "gated", "renamed")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ReleaseRef:
    """A cleaned release as a mark names it: roots that identify it, counts that describe it."""

    merkle_root: str
    files_root: str | None
    sequence: int
    rows_in: int
    rows_removed: int
    removed_by_signal: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "merkle_root": self.merkle_root,
            "files_root": self.files_root,
            "sequence": self.sequence,
            "rows_in": self.rows_in,
            "rows_removed": self.rows_removed,
            "removed_by_signal": dict(sorted(self.removed_by_signal.items())),
        }

    @classmethod
    def from_json(cls, obj: Any, where: Path) -> ReleaseRef:
        """Checked field by field and refused when odd: a release verifies against its own manifest,
        not against sense, and these fields go into notices sent to strangers (a signal name could
        otherwise carry markup, a count could be negative)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("merkle_root"), str):
            raise ExpungeError("a mark's release has no Merkle root", where)
        signals = obj.get("removed_by_signal") or {}
        if not isinstance(signals, dict):
            raise ExpungeError("a mark's removed_by_signal is not a mapping", where)
        files_root = obj.get("files_root")
        if not _ROOT.fullmatch(obj["merkle_root"]) or not (files_root is None or _is_root(files_root)):
            raise ExpungeError("a mark's release has a root that is not a SHA-256 in hex", where)
        if not all(isinstance(k, str) and _SIGNAL.fullmatch(k) for k in signals):
            raise ExpungeError("a mark's removed_by_signal has a signal name that is not a plain name", where)
        ref = cls(
            merkle_root=obj["merkle_root"],
            files_root=files_root,
            sequence=0 if obj.get("sequence") is None else _int(obj.get("sequence"), "sequence", where),
            rows_in=_int(obj.get("rows_in"), "rows_in", where),
            rows_removed=_int(obj.get("rows_removed"), "rows_removed", where),
            removed_by_signal={k: _int(v, "removed_by_signal", where) for k, v in signals.items()},
        )
        if ref.rows_removed > ref.rows_in:
            raise ExpungeError("a mark's release removed more rows than it read", where)
        return ref


_ROOT = re.compile(r"[0-9a-f]{64}")
_SIGNAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}")


def _is_root(value: object) -> bool:
    return isinstance(value, str) and _ROOT.fullmatch(value) is not None


def _int(value: Any, name: str, where: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ExpungeError(f"a mark's release has no valid {name} (a count, 0 or more)", where)


@dataclass(frozen=True)
class Mark:
    """One assertion about one dataset at one time. ``source`` is "mark" (a maintainer said so) or
    "evidence" (``apply`` measured it; ``followed`` is then the Merkle root of the release applied)."""

    dataset: str
    status: str
    recorded_at: str
    release: ReleaseRef | None = None
    successor: str | None = None
    source: str = "mark"
    followed: str | None = None

    @property
    def rows_removed(self) -> int | None:
        return self.release.rows_removed if self.release is not None else None

    def public(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "status": self.status,
            "recorded_at": self.recorded_at,
            "release": self.release.public() if self.release is not None else None,
            "successor": self.successor,
            "source": self.source,
            "followed": self.followed,
        }


@dataclass(frozen=True)
class Evidence:
    """What one ``apply`` found in a derivative: the release it followed, the rows that went, and the
    cleaned derivative (its own release) as the derivative's successor."""

    derivative: str  # the lineage id when given, else the derivative's absolute root folder
    lineage_id: str | None
    recorded_at: str
    followed: str  # Merkle root of the release applied
    result: ReleaseRef  # the cleaned derivative: its roots and counts (rows_removed: rows it still held)

    def public(self) -> dict[str, Any]:
        return {
            "derivative": self.derivative,
            "lineage_id": self.lineage_id,
            "recorded_at": self.recorded_at,
            "followed": self.followed,
            "result": self.result.public(),
        }

    def as_mark(self) -> Mark | None:
        """A derivative that still held removed rows is marked from evidence (when it has a lineage id)."""
        if self.lineage_id is None or self.result.rows_removed <= 0:
            return None
        return Mark(
            self.lineage_id,
            "removed",
            self.recorded_at,
            self.result,
            None,
            "evidence",
            self.followed,
        )


@dataclass
class Marks:
    history: dict[str, list[Mark]] = field(default_factory=dict)  # dataset id -> marks, oldest first
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)  # derivative -> checks, oldest first

    def current(self, dataset: str) -> Mark | None:
        marks = self.history.get(dataset)
        return marks[-1] if marks else None

    def removals(self) -> dict[str, Mark]:
        """Every dataset known to have had rows removed, with the newest mark that says so (a mark's
        release, or a derivative's evidence, whichever is newer). These are the roots of the taint."""
        found: dict[str, Mark] = {}
        for dataset, marks in self.history.items():
            hit = [m for m in marks if m.status == "removed"]
            if hit:
                found[dataset] = hit[-1]
        for checks in self.evidence.values():
            for check in checks:
                mark = check.as_mark()
                if mark is None:
                    continue
                old = found.get(mark.dataset)
                if old is None or old.recorded_at <= mark.recorded_at:
                    found[mark.dataset] = mark
        return found

    def pointers(self) -> dict[str, Mark]:
        """Datasets whose newest mark says they were withdrawn, gated or renamed."""
        return {
            d: marks[-1]
            for d, marks in self.history.items()
            if marks and marks[-1].status in POINTER_STATUSES
        }

    def public(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "marks": {d: [m.public() for m in ms] for d, ms in sorted(self.history.items())},
            "evidence": {d: [e.public() for e in es] for d, es in sorted(self.evidence.items())},
        }


def marks_path(lineage_dir: Path) -> Path:
    return lineage_dir / MARKS_FILE


def load(lineage_dir: Path) -> Marks:
    """The store's marks; none yet is an empty set. A file that does not parse is refused: a report
    built on half the marks would name too few repos."""
    path = marks_path(lineage_dir)
    if not path.is_file():
        return Marks()
    try:
        data = atomic.read_json(path)
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"unreadable marks file ({type(exc).__name__})", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExpungeError(f"not an {FORMAT} file", path)
    out = Marks()
    for key, marks in _mapping(data.get("marks"), path).items():
        # Ids as the graph knows them (lowercase owner/name): a hand-edited spelling must not make the
        # report miss every repo below the dataset. Entries under one id, in the order recorded.
        cid = _canonical(key, path)
        got = [_mark(m, path) for m in _list(marks, path)]
        if any(_canonical(m.dataset, path) != cid for m in got):
            raise ExpungeError("marks file: an entry names another dataset than its key", path)
        merged = cid in out.history
        history = out.history.setdefault(cid, [])
        history.extend(replace(m, dataset=cid) for m in got)
        if merged:
            history.sort(key=lambda m: m.recorded_at)
    for derivative, checks in _mapping(data.get("evidence"), path).items():
        out.evidence[derivative] = [_evidence(e, path) for e in _list(checks, path)]
    return out


def _canonical(text: str, where: Path) -> str:
    from expunge.lineage.cards import canonical_id

    cid = canonical_id(text)
    if cid is None:
        raise ExpungeError("marks file: a dataset key is not a repo id", where)
    return cid


def _mapping(obj: Any, where: Path) -> dict[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ExpungeError("marks file: expected a mapping", where)
    return {str(k): v for k, v in obj.items()}


def _list(obj: Any, where: Path) -> list[Any]:
    if not isinstance(obj, list):
        raise ExpungeError("marks file: expected a list of entries", where)
    return obj


def _mark(obj: Any, where: Path) -> Mark:
    if (
        not isinstance(obj, dict)
        or obj.get("status") not in STATUSES
        or not isinstance(obj.get("dataset"), str)
    ):
        raise ExpungeError("marks file: an entry has no dataset or an unknown status", where)
    release = obj.get("release")
    successor, followed = obj.get("successor"), obj.get("followed")
    if successor is not None and (
        not isinstance(successor, str) or _canonical(successor, where) != successor
    ):
        raise ExpungeError("marks file: a successor is not a repo id", where)
    if followed is not None and not _is_root(followed):
        raise ExpungeError("marks file: a followed release root is not a SHA-256 in hex", where)
    return Mark(
        dataset=obj["dataset"],
        status=obj["status"],
        recorded_at=str(obj.get("recorded_at", "")),
        release=ReleaseRef.from_json(release, where) if release is not None else None,
        successor=successor,
        source="evidence" if obj.get("source") == "evidence" else "mark",
        followed=followed,
    )


def _evidence(obj: Any, where: Path) -> Evidence:
    if not isinstance(obj, dict) or not isinstance(obj.get("derivative"), str):
        raise ExpungeError("marks file: an evidence entry names no derivative", where)
    lid = obj.get("lineage_id")
    return Evidence(
        derivative=obj["derivative"],
        lineage_id=_canonical(lid, where) if isinstance(lid, str) else None,
        recorded_at=str(obj.get("recorded_at", "")),
        followed=_followed(obj.get("followed", ""), where),
        result=ReleaseRef.from_json(obj.get("result"), where),
    )


def _followed(value: object, where: Path) -> str:
    if value == "" or _is_root(value):
        return str(value)
    raise ExpungeError("marks file: a followed release root is not a SHA-256 in hex", where)


def save(lineage_dir: Path, marks: Marks, tmp: Path | None) -> None:
    lineage_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(marks_path(lineage_dir), marks.public(), tmp)


def release_ref(release: Path) -> ReleaseRef:
    """The release a mark names, from its manifest, once the release verifies (fail closed)."""
    from expunge.release import manifest as mf
    from expunge.release.verify import verify_release

    problems = verify_release(release)
    if problems:
        raise ExpungeError(
            f"the release does not verify ({len(problems)} problem(s); run 'expunge verify' to list them):"
            " it is not recorded as a successor",
            release,
        )
    man = mf.load(release / mf.MANIFEST)
    return manifest_ref(man, release / mf.MANIFEST)


def manifest_ref(man: dict[str, Any], where: Path) -> ReleaseRef:
    from expunge.release import manifest as mf

    counts = man.get("counts") if isinstance(man.get("counts"), dict) else {}
    assert isinstance(counts, dict)
    return ReleaseRef.from_json(
        {
            "merkle_root": man.get("merkle_root"),
            "files_root": man.get("files_root"),
            "sequence": mf.sequence_of(man),
            "rows_in": counts.get("rows_in"),
            "rows_removed": counts.get("rows_removed"),
            "removed_by_signal": counts.get("removed_by_signal") or {},
        },
        where,
    )


def add_mark(marks: Marks, mark: Mark) -> Marks:
    """Append ``mark`` to its dataset's history (marks are never replaced: the history is the record)."""
    marks.history.setdefault(mark.dataset, []).append(mark)
    return marks


def add_evidence(marks: Marks, evidence: Evidence) -> Marks:
    marks.evidence.setdefault(evidence.derivative, []).append(evidence)
    return marks
