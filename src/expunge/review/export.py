"""The package a hotline receives: review ids, where each candidate is, why it was raised, and a verdict
template. Never an image or a caption; URLs only when asked, in their own 0600 file.

The package is built in a hidden 0700 folder next to OUT and renamed into place in one step, so OUT
either does not exist (or stays empty) or holds the complete package. Only then does the queue record
the round: if that last write fails, the package exists but its rows stay queued, and the next export
sends them again under the same review ids (verdicts from either package import alike).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.review.queue import VERDICTS, ReviewQueue, check_time

CANDIDATES = "candidates.csv"
TEMPLATE = "verdicts-template.csv"
README = "README.txt"
URLS = "urls.csv"

URLS_WARNING = (
    "urls.csv holds the URLs of the candidate rows: give it only to the authorised organisation, "
    "over a secure channel, and delete your copy once it is sent"
)

UrlsFn = Callable[[str, list[int]], list[bytes | None]]


@dataclass(frozen=True)
class ExportResult:
    out: Path
    candidates: int
    round: int
    urls_file: Path | None


def _check_out(out: Path) -> None:
    """An old package is never mixed with a new one: OUT must be absent or an empty folder."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExpungeError("export folder exists and is not a plain folder; refusing to write into it", out)
    if out.is_dir() and any(out.iterdir()):
        raise ExpungeError("export folder is not empty; refusing to mix an old package with a new one", out)


@contextlib.contextmanager
def _text(path: Path, mode: int = 0o644) -> Iterator[IO[str]]:
    """A new file (never an existing one), UTF-8; URL bytes that are not UTF-8 go through unchanged."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        raw = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
    with raw, io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        yield fh
        fh.flush()
        os.fsync(raw.fileno())


def _readme(count: int, round_: int, now: str, with_urls: bool) -> str:
    urls = (
        f"{URLS} lists the URL of each candidate by review id (empty where the dataset has none). It is\n"
        "readable by its owner only; keep it that way and delete it once the review is done.\n"
        if with_urls
        else "No URLs are included; the maintainer can export them (--include-urls) if you need them.\n"
    )
    return (
        "Review package from expunge\n"
        "===========================\n\n"
        f"Round {round_}, exported {now}, {count} candidate(s).\n\n"
        "These rows of a public image-text dataset were raised by automated signals (scores, keyword\n"
        "filters, nearest neighbours of confirmed findings). None of them has been looked at: they are\n"
        "sent for review by an authorised organisation only. The package holds no images and no captions.\n\n"
        f"{CANDIDATES}  one line per candidate: review_id, shard (file), row (0-based index in that\n"
        "                file), rules (the policy rules that raised it, ';'-separated) and signals (JSON:\n"
        "                signal name -> score or cosine similarity).\n"
        f"{TEMPLATE}  the same review ids, to fill in.\n"
        f"{urls}\n"
        "How to return verdicts\n"
        "----------------------\n"
        f"Fill the verdict column of {TEMPLATE} with exactly one of: {', '.join(VERDICTS)}.\n"
        "  confirmed  the row is abusive material: it is removed from the next release and its\n"
        "             neighbours are searched in the next round\n"
        "  not        the row is not: it is published and never queued again\n"
        "  unsure     undecided: the row stays withheld\n"
        "Leave the verdict empty for rows you have not reviewed (they stay withheld and pending).\n"
        "The reviewer column names who decided (optional); the note column is not stored by expunge.\n"
        "Return the file to the maintainer, who runs:  expunge review import VERDICTS.csv\n"
    )


def _inert(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a
    leading apostrophe: the hotline opens this file, and a shard file name is the dataset's to choose."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def export(
    queue: ReviewQueue,
    out: Path,
    now: str,
    *,
    include_urls: bool = False,
    again: bool = False,
    urls: UrlsFn | None = None,
    tmp: Path,
) -> ExportResult:
    """Write the package for queued rows (with ``again``: also exported-but-undecided and unsure rows)
    and record the round.

    ``tmp`` (the store's temporary folder) is not used for the package: it is staged beside OUT, so a
    crash can never leave URLs inside the store, whose files hold no URL in plaintext. The queue's own
    write goes through the folder the queue was built with.
    """
    check_time(now)
    if include_urls and urls is None:
        raise ValueError("include_urls needs a urls callback")
    out = Path(os.path.abspath(out))  # "pkg/." or "a/../pkg" name the folder itself
    _check_out(out)
    cols = (
        queue.table()
        .select(["review_id", "shard", "row", "rules", "signals", "state", "verdict"])
        .to_pydict()
    )
    picked = [
        i
        for i, (state, verdict) in enumerate(zip(cols["state"], cols["verdict"], strict=True))
        if state == "queued" or (again and (state == "exported" or verdict == "unsure"))
    ]
    round_ = queue.last_round() + 1

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f"{atomic.TMP_PREFIX}{out.name}.{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        os.mkdir(stage, 0o700)
        os.chmod(stage, 0o700)  # exactly: a strict umask must not lock us out, a loose one must not open it
        with _text(stage / CANDIDATES) as fh:
            w = csv.writer(fh)
            w.writerow(["review_id", "shard", "row", "rules", "signals"])
            for i in picked:
                w.writerow(
                    [
                        cols["review_id"][i],
                        _inert(cols["shard"][i]),
                        cols["row"][i],
                        ";".join(cols["rules"][i]),
                        cols["signals"][i],
                    ]
                )
        with _text(stage / TEMPLATE) as fh:
            w = csv.writer(fh)
            w.writerow(["review_id", "verdict", "reviewer", "note"])
            for i in picked:
                w.writerow([cols["review_id"][i], "", "", ""])
        with _text(stage / README) as fh:
            fh.write(_readme(len(picked), round_, now, include_urls))
        if include_urls and urls is not None:
            _write_urls(stage / URLS, cols, picked, urls)
        atomic.publish_folder(stage, out, "export folder")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    queue.mark_exported([cols["review_id"][i] for i in picked], now, round_)
    return ExportResult(out, len(picked), round_, out / URLS if include_urls else None)


def _write_urls(path: Path, cols: dict[str, list[Any]], picked: list[int], urls: UrlsFn) -> None:
    """``review_id,url`` in candidate order, created 0600 (never readable by others, not even briefly)."""
    by_shard: dict[str, list[int]] = {}
    for i in picked:
        by_shard.setdefault(str(cols["shard"][i]), []).append(i)
    found: dict[int, bytes | None] = {}
    for shard, idx in by_shard.items():
        values = urls(shard, [int(cols["row"][i]) for i in idx])
        if len(values) != len(idx):
            raise ExpungeError("the dataset returned a different number of URLs than rows asked for", shard)
        for i, value in zip(idx, values, strict=True):
            if value is not None and not isinstance(value, bytes | str):
                raise ExpungeError("the dataset's URL column holds values that are not text", shard)
            found[i] = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    with _text(path, 0o600) as fh:
        w = csv.writer(fh)
        w.writerow(["review_id", "url"])
        for i in picked:
            value = found[i]
            w.writerow(
                [cols["review_id"][i], "" if value is None else value.decode("utf-8", "surrogateescape")]
            )
