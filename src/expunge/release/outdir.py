"""The output folder: where a release may go, temporaries beside it, and sweeping it to what it publishes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.formats import Shard
from expunge.formats.paths import RESERVED_NAMES
from expunge.release import manifest as release_manifest
from expunge.storage.location import is_remote
from expunge.store import Store

STATE_DIR = ".expunge"  # where releases kept their state before it moved to the store
OUT_TMP = ".expunge-tmp"  # temporaries inside OUT, only when nowhere else on its filesystem will do
RECORDS = "removed.parquet"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_location(store: Store, root: str, shards: Sequence[Shard], out: Path) -> Path:
    """Refuse an output folder that would overwrite or publish what it must not; returns it resolved.

    Paths are compared after resolving symlinks: a link to the dataset, or a dataset reached through
    a link, is the same folder. Checked before anything is created.
    """
    out = out.resolve()
    root_path = Path(root).resolve()
    if _inside(out, root_path) or _inside(root_path, out):
        raise ExpungeError("the output folder must not contain, or lie inside, the dataset", out)
    for parent in out.parents:
        if (parent / release_manifest.MANIFEST).is_file():
            raise ExpungeError("the output folder must not lie inside another release", out)
    store_root = store.root.resolve()
    if _inside(out, store_root) or _inside(store_root, out):
        raise ExpungeError("the output folder must not contain, or lie inside, the store", out)
    for shard in shards:
        for f in shard.handler.source_paths(shard):
            if _inside(Path(f).resolve(), out):
                raise ExpungeError("a dataset file lies inside the output folder (through a link?)", f)
        published = shard.handler.published_sources(shard)
        outputs = [shard.name] + [os.path.relpath(p, root).replace(os.sep, "/") for p in published]
        for name in outputs:
            if name.split("/", 1)[0].lower() in RESERVED_NAMES:
                raise ExpungeError(
                    "this name is reserved for the release's own records; rename the file",
                    f"{root.rstrip('/')}/{name}" if is_remote(root) else Path(root) / name,
                )
    return out


def check_out(out: Path, resuming: bool = False) -> None:
    # ``resuming``: this store has already written into OUT (its state lives in the store, not in OUT).
    is_release = resuming or (out / STATE_DIR).is_dir() or (out / release_manifest.MANIFEST).is_file()
    if out.exists() and not out.is_dir():
        raise ExpungeError("the output path exists and is not a folder", out)
    if out.exists() and any(out.iterdir()) and not is_release:
        raise ExpungeError("output folder exists, is not empty and is not an expunge release", out)


def out_tmp(out: Path) -> Path:
    """A temporary folder on OUT's filesystem but outside OUT: beside it, or inside it (removed at the
    end) when OUT is a mount point or its parent is not writable."""
    beside = out.parent / f".{out.name}.expunge-tmp"
    try:
        beside.mkdir(exist_ok=True)
        if os.stat(beside).st_dev == os.stat(out).st_dev:
            return beside
        beside.rmdir()
    except OSError:
        pass
    return out / OUT_TMP


def same_device(a: Path, b: Path) -> bool:
    b.mkdir(parents=True, exist_ok=True)
    return os.stat(a).st_dev == os.stat(b).st_dev


def sweep(
    out: Path, published: set[str], previous: list[tuple[dict[str, Any], bytes]], *, signing: bool
) -> None:
    """Leave in OUT only what this release publishes, so the manifest can list every file.

    Files expunge itself put there are removed: those an earlier release listed (a shard that is now
    dropped, an image now flagged), temporaries, the old in-release state folder, unpublished records,
    a signature of an older manifest. Anything else is refused, never published and never deleted.
    """
    files, folders, odd = release_manifest.walk(out)
    if odd:
        raise ExpungeError(
            "the output folder holds a link or special file; a release holds files only", out / odd[0]
        )
    earlier: set[str] = set()
    for man, _ in previous:
        earlier.update(str(f.get("path")) for f in man.get("files", []) if isinstance(f, dict))
        earlier.update(str(sh.get("name")) for sh in man.get("shards", []) if isinstance(sh, dict))
    for rel in files:
        if (
            rel in published
            or rel == release_manifest.MANIFEST
            or (rel == release_manifest.SIGNATURE and signing)
        ):
            continue
        top = rel.split("/", 1)[0]
        ours = (
            rel in earlier
            or rel in (RECORDS, release_manifest.SIGNATURE)
            or top in (STATE_DIR, OUT_TMP)
            or PurePosixPath(rel).name.startswith(atomic.TMP_PREFIX)
        )
        if not ours:
            raise ExpungeError(
                "this file is not part of the release being written: move it away or choose another --out",
                out / rel,
            )
        (out / rel).unlink()
    needed = {str(parent) for rel in published for parent in PurePosixPath(rel).parents}
    for rel in sorted(folders, key=lambda f: -f.count("/")):
        if rel not in needed:
            with contextlib.suppress(OSError):  # not empty: a folder of published files
                (out / rel).rmdir()
