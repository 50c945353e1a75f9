"""Finding a dataset's files: one walk for every format, so all of them name shards the same way."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence

from expunge import storage
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


def _remote(spec: str, wanted: Callable[[str], bool], what: str) -> list[str]:
    """A remote spec's shard URLs: a prefix listed recursively (tool-state names skipped, as locally),
    a glob through the backend's own ``glob``, or one object named explicitly.

    Object stores have no folders, so a prefix with nothing under it is how a missing dataset looks:
    refused here, like a missing local path, rather than contributing nothing unnoticed.
    """
    loc = storage.parse(spec)
    if any(ch in loc.path for ch in "*?["):
        fs = storage.filesystem(loc)
        with storage.storage_errors(loc):
            found = fs.glob(loc.url, detail=True)
        urls = []
        for name, info in sorted(found.items()):
            if info.get("type") != "file":
                continue
            hit = storage.Location(loc.protocol, str(name).strip("/"))
            if not hit.name.startswith(".") and wanted(hit.url):
                urls.append(hit.url)
        return urls
    listed = storage.walk(loc)
    if not listed:
        raise ExpungeError(f"no {what} shards found", loc.redacted())
    if listed == [loc]:
        return [loc.url]  # one object named explicitly: taken as it is, like a local file
    return [x.url for x in listed if wanted(x.url)]


def _remote_root(urls: list[str]) -> str:
    """The deepest common prefix folder of remote shards: their names are relative to it."""
    locs = [storage.parse(u) for u in urls]
    protocols = {x.protocol for x in locs}
    folders = [x.parent.path.split("/") for x in locs]
    common = folders[0]
    for parts in folders[1:]:
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    if len(protocols) > 1 or not common:
        shown = ", ".join(sorted({storage.redact(u) for u in (urls[0], urls[-1])}))
        raise ExpungeError("a dataset's remote shards must share one bucket (one root)", shown)
    return storage.Location(locs[0].protocol, "/".join(common)).url


def relative(path: str, root: str) -> str:
    """A shard's name: its path below the dataset root, ``/``-separated, for paths and URLs alike."""
    if is_url(path):
        return path[len(root) :].lstrip("/")
    return os.path.relpath(path, root).replace(os.sep, "/")


def is_url(path: str) -> bool:
    """Whether a discovered shard path is a remote URL (its readers go through ``expunge.storage``)."""
    return storage.is_remote(path)


def walk(specs: Sequence[str], wanted: Callable[[str], bool], what: str) -> tuple[str, list[str]]:
    """Directories (recursively, sorted), globs and files → sorted absolute paths and their common root.

    Hidden and underscore folders hold tool state (``.expunge``, Spark's ``_temporary``), not shards.
    A file named explicitly is taken as it is; directories and globs contribute only ``wanted`` files.
    Remote specs (``s3://…``, any fsspec URL) give URL strings (``Location.url``) and a root URL; local
    and remote specs cannot be mixed in one dataset, which has one root.
    """
    remote = [is_url(s) for s in specs]
    if any(remote) and not all(remote):
        raise ExpungeError("a dataset is either local or remote, not both", ", ".join(_shown(specs)))
    paths: list[str] = []
    urls: list[str] = []
    for spec in specs:
        if is_url(spec):
            urls.extend(_remote(spec, wanted, what))
            continue
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
    if urls:
        ordered = sorted(set(urls))
        return _remote_root(ordered), ordered
    absolute = sorted({os.path.abspath(p) for p in paths})
    if not absolute:
        raise ExpungeError(f"no {what} shards found", ", ".join(_shown(specs)))
    return os.path.commonpath([os.path.dirname(p) for p in absolute]), absolute


def _shown(specs: Sequence[str]) -> list[str]:
    return [storage.redact(s) if is_url(s) else s for s in specs]
