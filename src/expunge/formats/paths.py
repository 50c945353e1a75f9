"""Finding a dataset's files: one walk for every format, so all of them name shards the same way."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence

from expunge.errors import ExpungeError

# Names a release writes at its top level (and the state folder older releases kept there). No dataset
# file may land on one of them; at the top of a release they are the release's own, not a shard's.
RESERVED_NAMES = frozenset(
    n.lower()
    for n in (
        "MANIFEST.json",
        "MANIFEST.json.minisig",
        "summary.json",
        "removed.parquet",
        "croissant.json",
        "README.md",
        "report.html",
        ".expunge",
        ".expunge-tmp",
    )
)


def walk(specs: Sequence[str], wanted: Callable[[str], bool], what: str) -> tuple[str, list[str]]:
    """Directories (recursively, sorted), globs and files → sorted absolute paths and their common root.

    Hidden and underscore folders hold tool state (``.expunge``, Spark's ``_temporary``), not shards.
    A file named explicitly is taken as it is; directories and globs contribute only ``wanted`` files.
    """
    paths: list[str] = []
    for spec in specs:
        spec = spec.removeprefix("file://")
        if os.path.isdir(spec):
            for dirpath, dirnames, filenames in os.walk(spec):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                paths.extend(os.path.join(dirpath, f) for f in filenames if wanted(f))
        elif any(ch in spec for ch in "*?["):
            paths.extend(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p) and wanted(p))
        elif os.path.isfile(spec):
            paths.append(spec)
        else:
            raise ExpungeError(f"dataset path not found (expected a directory, glob or {what} file)", spec)
    absolute = sorted({os.path.abspath(p) for p in paths})
    if not absolute:
        raise ExpungeError(f"no {what} shards found", ", ".join(specs))
    return os.path.commonpath([os.path.dirname(p) for p in absolute]), absolute
