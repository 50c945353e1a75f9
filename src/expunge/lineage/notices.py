"""One Markdown notice per affected repo, addressed to its maintainers, and an index of them.

A notice says what was found (counts by signal, never content), how the repo descends from the marked
dataset (each step declared in a card or inferred), which cleaned release succeeds it and how to check
that release, and what to do. Ids are the only card text that reaches a notice, and each is written as a
code span with backticks and line breaks removed, so an id can never turn into a link, a heading or an
image in whatever renders the Markdown.

The folder is written whole or not at all: every file goes into a temporary sibling folder that is
renamed into place at the end, and an ``--out`` that already holds anything is refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.lineage.report import Affected, LineageReport, Pointer

INDEX = "INDEX.md"
POINTERS = "pointers.md"
_RESERVED = re.compile(r"con|prn|aux|nul|com[0-9]|lpt[0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f`|\u0080-\u009f\u2028\u2029]")


def code(text: str) -> str:
    """``text`` as an inert Markdown code span (``|`` removed too: it would split a table cell)."""
    return "`" + (_CONTROL.sub("", text) or "?") + "`"


def file_name(repo: str, taken: set[str], kind: str) -> str:
    """``owner__name.md``: lowercase, only ``[a-z0-9._-]``, never hidden, unique within ``taken``."""
    stem = re.sub(r"[^a-z0-9._-]+", "_", repo.lower().replace("/", "__")).lstrip(".") or "repo"
    stem = stem[:150]
    if _RESERVED.fullmatch(stem.split(".", 1)[0]):
        stem = "_" + stem  # CON, NUL, COM1... (with any extension) cannot be opened on Windows
    name = f"{stem}.md"
    if name in taken or name in (INDEX.lower(), POINTERS, INDEX):
        name = f"{stem}--{kind}.md"
    n = 2
    while name in taken:
        name = f"{stem}--{kind}-{n}.md"
        n += 1
    taken.add(name)
    return name


def _path_lines(a: Affected) -> list[str]:
    lines = []
    for i, s in enumerate(a.steps, 1):
        how = "declared in a card" if s.declared else "**inferred**, not declared in a card: please check it"
        lines.append(f"{i}. {code(s.parent)} → {code(s.child)}: {code(s.relation)}, {how}")
    return lines


def notice(a: Affected) -> str:
    mark = a.mark
    rel = mark.release
    what = "model" if a.kind == "model" else "dataset" if a.kind == "dataset" else "repo"
    out = [
        f"# Notice to the maintainers of {code(a.id)}",
        "",
        f"Your {what} {code(a.id)} descends from {code(a.ancestor)}, a dataset that had rows removed "
        "because they matched known-abuse hash lists.",
        "",
        "## What was found",
        "",
    ]
    if rel is not None:
        out.append(f"{rel.rows_removed:,} of {rel.rows_in:,} rows of {code(a.ancestor)} were removed.")
        if rel.removed_by_signal:
            out += ["", "| signal | rows removed |", "| --- | ---: |"]
            out += [f"| {code(k)} | {v:,} |" for k, v in sorted(rel.removed_by_signal.items())]
    else:
        out.append(
            f"{code(a.ancestor)} was marked as having had rows removed; no release with counts was given."
        )
    if mark.source == "evidence":
        out += [
            "",
            "This was measured by `expunge apply` against the release with Merkle root "
            f"{code(mark.followed or '?')}.",
        ]
    out += [
        "",
        "This notice holds counts and ids only: no URL, caption or image of any removed row.",
        "",
        f"## How {code(a.id)} descends from {code(a.ancestor)}",
        "",
        *_path_lines(a),
        "",
        "## The cleaned successor",
        "",
    ]
    if mark.successor:
        out.append(f"- successor: {code(mark.successor)}")
    if rel is not None:
        out += [
            f"- release Merkle root: {code(rel.merkle_root)} (release sequence {rel.sequence})",
            *([f"- files root: {code(rel.files_root)}"] if rel.files_root else []),
            "",
            "Check a copy before you use it: `expunge verify RELEASE` must print `verified`, and the",
            f"`merkle_root` in `RELEASE/MANIFEST.json` must be {code(rel.merkle_root)}.",
        ]
    elif not mark.successor:
        out.append("No cleaned successor has been recorded yet.")
    out += ["", "## What to do", ""]
    if a.kind == "dataset":
        out += [
            "- Clean your dataset so it follows the cleaned release: "
            "`expunge apply RELEASE YOUR_DATASET --out CLEANED` keeps only rows the release kept, "
            "and publish `CLEANED` with its manifest.",
            "- Point your card at the successor instead of the marked dataset.",
        ]
    else:
        out += [
            "- Retrain, or fine-tune again, from the cleaned successor (or from a base model trained on it), "
            "and publish the new weights as a new version.",
            "- Say in your card which dataset version it was trained on, and point `datasets` / "
            "`base_model` at the successor.",
            "- If you keep the old weights available, say that they descend from data with removed rows.",
        ]
    if a.inferred:
        out.append("- If an inferred step above is wrong, correct your card so the lineage is declared.")
    return "\n".join(out) + "\n"


def pointers_page(pointers: tuple[Pointer, ...]) -> str:
    out = [
        "# Cards pointing at withdrawn, gated or renamed datasets",
        "",
        "These repos name a dataset whose newest mark says it was withdrawn, gated or renamed; "
        "their cards should point at what replaced it.",
        "",
    ]
    if not pointers:
        out.append("None.")
    for p in pointers:
        succ = f"; successor {code(p.successor)}" if p.successor else ""
        how = "declared" if p.declared else "inferred"
        out.append(
            f"- {p.kind} {code(p.repo)} → {code(p.dataset)}: {p.status}{succ} ({code(p.relation)}, {how})"
        )
    return "\n".join(out) + "\n"


def index_page(report: LineageReport, names: dict[str, str]) -> str:
    out = [
        "# Lineage notices",
        "",
        f"{len(report.affected)} affected repo(s) descend from {len(report.marked)} marked dataset(s); "
        "one notice each. Counts and ids only.",
        "",
    ]
    for m in report.marked:
        rel = m.mark.release
        signals = (
            ", ".join(f"{code(k)} {v:,}" for k, v in sorted(rel.removed_by_signal.items()) if v)
            if rel
            else ""
        )
        count = (
            f"{rel.rows_removed:,} rows removed ({signals or 'no per-signal counts'})"
            if rel
            else "count unknown"
        )
        out.append(f"- marked: {code(m.id)}: {count}")
    out += ["", "| repo | kind | nearest marked ancestor | notice |", "| --- | --- | --- | --- |"]
    for a in report.affected:
        out.append(f"| {code(a.id)} | {a.kind} | {code(a.ancestor)} | [{names[a.id]}]({names[a.id]}) |")
    out += [
        "",
        f"Repos whose cards point at withdrawn, gated or renamed datasets: [{POINTERS}]({POINTERS}) "
        f"({len(report.pointers)}).",
    ]
    return "\n".join(out) + "\n"


def write_notices(report: LineageReport, out: Path, tmp: Path | None = None) -> dict[str, Path]:
    """Write every notice, the index and the pointers page into ``out`` (new or empty), all at once.

    Returns the notice path per repo id."""
    if out.exists() and not out.is_dir():
        raise ExpungeError("the notices folder is a file: give a new or empty folder", out)
    if out.exists() and any(out.iterdir()):
        raise ExpungeError("the notices folder is not empty: give a new or empty folder", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f"{atomic.TMP_PREFIX}{out.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        taken: set[str] = set()
        names = {a.id: file_name(a.id, taken, a.kind) for a in report.affected}
        for a in report.affected:
            atomic.write_bytes(staging / names[a.id], notice(a).encode("utf-8"))
        atomic.write_bytes(staging / INDEX, index_page(report, names).encode("utf-8"))
        atomic.write_bytes(staging / POINTERS, pointers_page(report.pointers).encode("utf-8"))
        if out.exists():
            out.rmdir()  # empty (checked above); a file arriving since makes this fail, not vanish
        os.rename(staging, out)
        atomic.fsync_dir(out.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return {repo: out / name for repo, name in names.items()}
