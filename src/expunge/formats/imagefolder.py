"""Plain image folders: every directory that holds image files is a shard, every image file a sample.

A folder may also hold one metadata parquet naming its files (a ``file`` / ``filename`` / ``path``
column); its rows are then the shard's rows, linked to the files by name, like img2dataset's parquet
is linked to its tar by ``key``. Cleaning writes the same folder layout without the removed files:
kept files are hard-linked (or copied) byte for byte.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from expunge import atomic
from expunge.errors import ExpungeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
FILE_COLUMNS = ("file", "filename", "file_name", "path", "image_path", "image")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith((".", "_"))


@dataclass(frozen=True)
class FolderShard:
    name: str  # directory relative to the dataset root ("." for the root itself)
    path: str  # absolute directory
    parquet: str | None  # a metadata parquet in that directory, if exactly one


def has_images(specs: Sequence[str]) -> bool:
    for spec in specs:
        if os.path.isdir(spec):
            for _dirpath, dirnames, filenames in os.walk(spec):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                if any(is_image_file(f) for f in filenames):
                    return True
    return False


def discover_folders(specs: Sequence[str]) -> tuple[str, list[FolderShard]]:
    dirs: set[str] = set()
    for spec in specs:
        matches = glob.glob(spec) if any(ch in spec for ch in "*?[") else [spec]
        for base in matches:
            if not os.path.isdir(base):
                raise ExpungeError("image folder not found", base)
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                if any(is_image_file(f) for f in filenames):
                    dirs.add(os.path.abspath(dirpath))
    if not dirs:
        raise ExpungeError("no image files found", ", ".join(specs))
    ordered = sorted(dirs)
    root = os.path.commonpath(ordered) if len(ordered) > 1 else ordered[0]
    shards = []
    for d in ordered:
        parquets = sorted(f for f in os.listdir(d) if f.endswith(".parquet") and not f.startswith((".", "_")))
        name = os.path.relpath(d, root).replace(os.sep, "/")
        shards.append(FolderShard(name, d, os.path.join(d, parquets[0]) if len(parquets) == 1 else None))
    return root, shards


def image_files(directory: str) -> list[str]:
    """The shard's samples: image files directly in the directory, sorted by name."""
    return sorted(
        f for f in os.listdir(directory) if is_image_file(f) and os.path.isfile(os.path.join(directory, f))
    )


def iter_images(directory: str) -> Iterator[tuple[int, str, bytes]]:
    for i, name in enumerate(image_files(directory)):
        try:
            data = Path(directory, name).read_bytes()
        except OSError as exc:
            raise ExpungeError(f"cannot read image ({exc.strerror})", os.path.join(directory, name)) from None
        yield i, name, data


def write_folder(directory: str, out_dir: Path, drop: set[str], tmp_dir: Path, skip: set[str]) -> int:
    """Copy the directory's files to ``out_dir`` except the dropped images (and ``skip``, written elsewhere).

    Returns how many image files were kept. Subdirectories are shards of their own.
    """
    kept = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(directory)):
        src = Path(directory, name)
        if not src.is_file() or name in drop or name in skip or name.startswith("."):
            continue
        atomic.copy_or_link(src, out_dir / name, tmp_dir)
        kept += is_image_file(name)
    return kept
