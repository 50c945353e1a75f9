"""Reading the verdicts a hotline returns, and recording them in the queue.

The file decides what gets published, so it is read fail-closed: a verdict is exactly confirmed, not or
unsure (any case); anything else, a malformed line, an id this store never queued, or one id with two
different verdicts stops the import before anything is recorded. Errors name the file and the line and
never quote it: a line may carry a note describing the material.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from expunge.errors import ExpungeError
from expunge.review.queue import ID_HEX, VERDICTS, ReviewQueue, check_time

_ID = re.compile(rf"[0-9a-f]{{{ID_HEX}}}")
_REVIEWER_MAX = 200

Verdict = tuple[str, str, str | None, str | None]


@dataclass(frozen=True)
class ImportResult:
    decided: dict[str, int]  # rows newly decided or whose verdict changed, per verdict
    unchanged: int  # rows that already had the verdict given
    changed: int = 0  # of ``decided``: rows whose earlier verdict was replaced (a hotline correcting itself)
    skipped: int = 0  # lines whose verdict was left empty (template rows not filled in)


def _reviewer_ok(name: str) -> bool:
    return len(name) <= _REVIEWER_MAX and name.isprintable()


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        raise ExpungeError("cannot read the verdicts file", path) from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    nul = data.find(b"\0")
    if nul >= 0:  # a binary or damaged file, not a spreadsheet's CSV
        line = data.count(b"\n", 0, nul) + 1
        raise ExpungeError("the verdicts file holds a NUL byte", path, f"line {line}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ExpungeError("the verdicts file is not UTF-8 text", path, f"line {line}") from None


def _records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(first line number, fields) per CSV record; a record may span lines inside quotes."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    # spreadsheets in some locales save CSV with ';' (or tabs): take the header's separator, never a mix
    delimiter = next((d for d in ",;\t" if d in first), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    out: list[tuple[int, list[str]]] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return out
        except csv.Error:
            raise ExpungeError(
                "malformed CSV (quoting, NUL byte or an over-long field)", path, f"line {start}"
            ) from None
        if any(field.strip() for field in record):
            out.append((start, record))


def _parse(path: Path) -> tuple[list[tuple[int, str, str, str | None, str | None]], int]:
    """(line, review_id, verdict, reviewer, note) for each filled-in line, and the count of lines whose
    verdict was left empty."""
    path = Path(path)
    records = _records(path, _decode(path))
    if not records:
        raise ExpungeError("the verdicts file is empty; it needs a header with review_id and verdict", path)
    head_line, header = records[0]
    names = [h.strip().casefold() for h in header]
    if len(set(names)) != len(names) or "review_id" not in names or "verdict" not in names:
        raise ExpungeError(
            "the header must name review_id and verdict columns (each once)", path, f"line {head_line}"
        )
    col = {name: names.index(name) for name in names}
    out: list[tuple[int, str, str, str | None, str | None]] = []
    seen: dict[str, tuple[str, int]] = {}
    skipped = 0
    for line, record in records[1:]:
        where = f"line {line}"
        if len(record) > len(names):
            raise ExpungeError(f"the line has more fields than the header ({len(names)})", path, where)
        fields = [f.strip() for f in record] + [""] * (len(names) - len(record))
        rid = fields[col["review_id"]].lower()
        verdict = fields[col["verdict"]].casefold()
        if not _ID.fullmatch(rid):
            raise ExpungeError(f"review_id is missing or not {ID_HEX} hexadecimal characters", path, where)
        if not verdict:
            skipped += 1
            continue
        if verdict not in VERDICTS:
            raise ExpungeError(f"verdict must be one of {', '.join(VERDICTS)}", path, where)
        reviewer = fields[col["reviewer"]] if "reviewer" in col else ""
        if not _reviewer_ok(reviewer):
            raise ExpungeError(
                f"reviewer is longer than {_REVIEWER_MAX} characters or holds control characters", path, where
            )
        note = fields[col["note"]] if "note" in col else ""
        if rid in seen:
            earlier, earlier_line = seen[rid]
            if earlier != verdict:
                raise ExpungeError(
                    f"this review id has a different verdict on line {earlier_line}; refusing to choose",
                    path,
                    where,
                )
            continue
        seen[rid] = (verdict, line)
        out.append((line, rid, verdict, reviewer or None, note or None))
    return out, skipped


def read_verdicts(path: Path) -> list[Verdict]:
    """(review_id, verdict, reviewer, note) for each filled-in line; lines with an empty verdict are
    skipped (``import_verdicts`` reports how many)."""
    rows, _ = _parse(path)
    return [(rid, verdict, reviewer, note) for _, rid, verdict, reviewer, note in rows]


def import_verdicts(queue: ReviewQueue, path: Path, now: str, by: str | None = None) -> ImportResult:
    """Record the verdicts in ``path``, all or nothing. ``decided_by`` is the line's reviewer, else
    ``by``, else "unknown". Notes are not stored."""
    check_time(now)
    if by is not None and (not by.strip() or not _reviewer_ok(by.strip())):
        raise ExpungeError(
            f"the reviewer name is empty, longer than {_REVIEWER_MAX} characters or holds control characters"
        )
    rows, skipped = _parse(Path(path))
    known = set(queue.table().column("review_id").to_pylist())
    for line, rid, _, _, _ in rows:
        if rid not in known:
            raise ExpungeError(
                "this review id is not in the dataset's review queue (another dataset or store?)",
                path,
                f"line {line}",
            )
    fallback = by.strip() if by is not None else "unknown"
    decided, unchanged, changed = queue.apply_verdicts(
        [(rid, verdict, reviewer or fallback) for _, rid, verdict, reviewer, _ in rows], now
    )
    return ImportResult(decided, unchanged, changed, skipped)
