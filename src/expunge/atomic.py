"""Atomic file writes: temp file in the same directory, fsync, rename, fsync the directory.

A reader (or a resumed run) therefore sees either the old file, the complete new file, or nothing;
never a torn write, even after SIGKILL or power loss.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".expunge-tmp-"


def fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry must reach the disk too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_folder(stage: Path, out: Path, what: str) -> None:
    """Make a folder written in ``stage`` (beside ``out``) appear as ``out`` in one rename, so nobody
    ever sees half a package. ``out`` must be absent or empty; one that changed meanwhile is refused."""
    from expunge.errors import ExpungeError

    fsync_dir(stage)
    try:
        os.rename(stage, out)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise ExpungeError(f"{what} changed while the package was written; refusing", out) from None
        raise
    fsync_dir(out.parent)


def temp_dir_for(final: Path, tmp_dir: Path | None) -> Path:
    """Where the temporary for ``final`` goes: ``tmp_dir`` when it is on ``final``'s filesystem, else
    ``final``'s own folder (under a hidden name).

    A rename cannot cross filesystems (EXDEV), and one caller often writes to two places (the store and
    a release folder on another disk): checking per destination keeps every rename on one device.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is None:
        return final.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    if os.stat(tmp_dir).st_dev != os.stat(final.parent).st_dev:
        return final.parent
    return tmp_dir


@contextlib.contextmanager
def atomic_path(final: Path, tmp_dir: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to ``final``.

    ``tmp_dir`` lets callers keep temporaries out of a published folder; it is used only when it is on
    the same filesystem as ``final`` (see :func:`temp_dir_for`). On failure the temporary is removed and
    ``final`` is untouched.
    """
    where = temp_dir_for(final, tmp_dir)
    tmp = where / f"{TMP_PREFIX}{final.name}.{os.getpid()}"
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.filename is not None or not exc.errno:
                raise
            # Writers such as Arrow's report a full disk without a file name: name the one being written.
            raise OSError(exc.errno, os.strerror(exc.errno), str(final)) from None
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(final: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    with atomic_path(final, tmp_dir) as tmp:
        tmp.write_bytes(data)


def write_json(final: Path, obj: Any, tmp_dir: Path | None = None) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so reruns are byte-identical."""
    write_bytes(final, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), tmp_dir)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def copy_or_link(src: Path, final: Path, tmp_dir: Path | None = None) -> str:
    """Place an exact copy of ``src`` at ``final``: a hard link where the filesystem allows, else a copy.

    Returns ``"linked"`` or ``"copied"``. Either way the result appears atomically.
    """
    where = temp_dir_for(final, tmp_dir)
    tmp = where / f"{TMP_PREFIX}{final.name}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
        how = "linked"
    except OSError:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        how = "copied"
    try:
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(final.parent)
    return how
